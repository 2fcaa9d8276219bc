import type { Suite } from '../lib/suite.js';
export const linuxTcg: Suite = async () => [];
