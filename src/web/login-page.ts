/**
 * The login page: the one page served without the token. Self-contained
 * (its style inline) so that nothing else needs to be reachable unauthenticated.
 */
function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function loginPage(opts: { version: string; error?: string }): string {
  const error = opts.error ? `<p class="error" role="alert">${escapeHtml(opts.error)}</p>` : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>typevisor — log in</title>
<style>
  body { margin: 0; min-height: 100vh; display: grid; place-items: center; background: #f4f5f7; color: #1d2330;
         font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
  form { background: #fff; padding: 28px 32px; border-radius: 10px; box-shadow: 0 1px 3px rgba(0,0,0,.12); width: 360px; }
  h1 { font-size: 20px; margin: 0 0 4px; }
  p { margin: 0 0 16px; color: #5b6475; font-size: 13px; }
  label { display: block; font-weight: 600; margin-bottom: 6px; }
  input { width: 100%; box-sizing: border-box; padding: 8px 10px; border: 1px solid #c8ceda; border-radius: 6px; font: 13px ui-monospace, monospace; }
  button { margin-top: 14px; width: 100%; padding: 9px; border: 0; border-radius: 6px; background: #2f5bd3; color: #fff; font-weight: 600; cursor: pointer; }
  .error { color: #b42318; background: #fdecea; padding: 8px 10px; border-radius: 6px; }
</style>
</head>
<body>
<form method="post" action="/login">
  <h1>typevisor</h1>
  <p>Web console ${escapeHtml(opts.version)}. Enter the token <code>typevisor serve</code> printed at start.</p>
  ${error}
  <label for="token">Token</label>
  <input id="token" name="token" type="password" autocomplete="off" autofocus required>
  <button type="submit">Log in</button>
</form>
</body>
</html>
`;
}
