/**
 * Cases that found bugs, replayed on every run (seed, index → the same bytes). Each line says
 * what the server did before its fix.
 */
export const DIMSE_REGRESSIONS: { seed: number; index: number; found: string }[] = [
  {
    seed: 1,
    index: 60,
    found: '133 presentation contexts: dcmjs-dimse threw encoding the A-ASSOCIATE-AC (unhandled rejection), the peer waited forever',
  },
  { seed: 1, index: 58, found: '275 presentation contexts: as above' },
  { seed: 1, index: 91, found: 'a second A-ASSOCIATE-RQ on an open association was answered with another A-ASSOCIATE-AC' },
  { seed: 1, index: 150, found: 'A-RELEASE-RQ before any association was answered with A-RELEASE-RP' },
  { seed: 1, index: 89, found: 'A-RELEASE-RP first: the connection closed without A-ABORT' },
  { seed: 1, index: 75, found: 'C-ECHO on a context never proposed: the connection closed without A-ABORT or a log code' },
  { seed: 1, index: 110, found: 'a data PDV before any command: closed without A-ABORT' },
  {
    seed: 1,
    index: 84,
    found: 'an item longer than its defined-length sequence was acknowledged (the walker skipped defined-length sequences whole)',
  },
  {
    seed: 1,
    index: 14,
    found:
      'Study Instance UID "../../../../../../tmp/dffuzz-escape" was acknowledged (a step naming folders by UID could write outside its root)',
  },
  { seed: 1, index: 72, found: 'SOP Instance UID "1.2.3/../../x" was acknowledged' },
  { seed: 1, index: 103, found: 'SOP Instance UID ".." was acknowledged' },
  { seed: 1, index: 43, found: 'no acceptable presentation context: A-ASSOCIATE-RJ with no DF_ERR code in the log' },
  { seed: 3, index: 1097, found: 'a C-ECHO command mutated into a C-STORE-RQ without data set: answered 0110 with no log line' },
  { seed: 11, index: 61, found: 'C-MOVE to an unknown destination: refused A801 with no DF_ERR code in the log' },
  { seed: 11, index: 151, found: 'C-GET whose identifier does not match: refused A900 with no DF_ERR code in the log' },
  { seed: 11, index: 1187, found: 'a command mangled into N-EVENT-REPORT-RQ: dcmjs-dimse answered 0110 and nothing was logged' },
  { seed: 3, index: 2481, found: 'a command element length pointing past the set, read as a C-STORE-RQ without data set: as above' },
  { seed: 20261123, index: 29, found: 'an A-ASSOCIATE-RQ cut short: the connection stayed open for as long as the peer liked (no ARTIM)' },
  {
    seed: 20261123,
    index: 34,
    found: 'a C-ECHO command with bytes inserted: neither an answer nor an A-ABORT, ever (silence counted as fine)',
  },
  { seed: 20261123, index: 48, found: 'a command element length pointing far past the set: as above' },
  {
    seed: 20261123,
    index: 108,
    found: 'a C-STORE whose last fragment never comes: its partial file and descriptor held until the peer went away (no DIMSE timer)',
  },
];
