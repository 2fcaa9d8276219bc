// Lint: typescript-eslint's recommended rules plus the layering rule of
// STYLE.md: dependencies flow memory <- bus <- devices <- machine <- api <- front ends;
// engines depend only on memory, bus, the native layer and the engine interface.
import tseslint from 'typescript-eslint';

const layer = (files, forbidden, why) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      { patterns: forbidden.map((group) => ({ group: [group], message: why })) },
    ],
  },
});

const engines = ['**/engine/kvm/**', '**/engine/soft/**'];
const frontEnds = ['**/cli/**', '**/api/**', '**/web/**'];
const machine = ['**/vmm/**'];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'guest/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  layer(['src/memory/**'], ['**/bus/**', '**/devices/**', '**/engine/**', '**/boot/**', '**/acpi/**', ...machine, ...frontEnds], 'memory is the bottom layer'),
  layer(['src/state/**'], ['**/memory/**', '**/bus/**', '**/devices/**', '**/engine/**', '**/boot/**', '**/acpi/**', ...machine, ...frontEnds], 'the state reader is a leaf every layer may use'),
  layer(['src/bus/**'], ['**/devices/**', '**/engine/**', '**/boot/**', '**/acpi/**', ...machine, ...frontEnds], 'buses depend only on memory'),
  layer(['src/devices/**', 'src/backends/**', 'src/virtio/**'], [...engines, ...machine, ...frontEnds], 'devices never import engines, the machine or front ends'),
  layer(['src/boot/**', 'src/acpi/**', 'src/arch/**'], [...engines, ...machine, ...frontEnds, '**/devices/**'], 'boot and ACPI builders are independent of engines and devices'),
  layer(['src/engine/**'], ['**/devices/**', '**/virtio/**', '**/boot/**', '**/acpi/**', ...machine, ...frontEnds], 'engines depend only on memory, buses and the engine interface'),
  layer(['src/vmm/**'], frontEnds, 'the machine never imports a front end'),
);
