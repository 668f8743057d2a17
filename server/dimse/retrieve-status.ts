/** PS3.4 C.4.2.1.5 (C-MOVE) and C.4.3.1.4 (C-GET) statuses, shared by both retrieve services. */
export const RetrieveStatus = {
  Pending: 0xff00,
  Success: 0x0000,
  Cancel: 0xfe00,
  SubOperationsWithFailures: 0xb000,
  UnableToPerformSubOperations: 0xa702,
  MoveDestinationUnknown: 0xa801,
  IdentifierDoesNotMatch: 0xa900,
  UnableToProcess: 0xc000,
} as const;
