import type { Suite } from '../lib/suite.js';
export const processMode: Suite = async () => [];
