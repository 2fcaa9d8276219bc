/**
 * The command-line contract of the default guest's /init
 * (guest/initramfs/init): `tv.cmd=<base64 of a shell script>` runs the script
 * instead of an interactive shell, prints "tv: exit status N" and powers off.
 * Base64 (RFC 4648, standard alphabet) has no spaces, quotes or '\0', so the
 * kernel's parameter parser passes the value through whole whatever the
 * script holds.
 */

export const GUEST_COMMAND_PARAM = 'tv.cmd';

/** The line /init prints after the script ends. */
export const GUEST_EXIT_STATUS = /^tv: exit status (\d+)\r?$/m;

/** The kernel parameter that makes the default guest run `script` and power off. */
export function guestCommandParam(script: string): string {
  if (script.trim() === '') throw new RangeError('the guest command is empty');
  return `${GUEST_COMMAND_PARAM}=${Buffer.from(script, 'utf8').toString('base64')}`;
}

/** The exit status /init reported in console output, or undefined when it reported none. */
export function guestExitStatus(consoleText: string): number | undefined {
  const m = GUEST_EXIT_STATUS.exec(consoleText);
  return m ? Number(m[1]) : undefined;
}
