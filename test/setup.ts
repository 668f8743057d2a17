// Runs in every test file: temporary directories made with tempDir() go when the file is done.
import { afterAll } from 'vitest';
import { removeTempDirs } from './helpers/temp.ts';

afterAll(removeTempDirs);
