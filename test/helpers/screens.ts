import os from 'node:os';
import path from 'node:path';

/** Where the web page tests leave their screenshots, to be looked at after the run. */
export const SCREENS = path.join(os.tmpdir(), 'dicomflow-web-screens');
