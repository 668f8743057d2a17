// dcmjs ships no type declarations; its API is used through small typed wrappers.
declare module 'dcmjs';
