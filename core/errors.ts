/**
 * Every error a user can meet has a stable code (documented in docs/errors.md; a test keeps the
 * two in step). A code, once retired, is never reused.
 */
export const errorCodes = {
  DF_ERR_CONFIG_INVALID: 'The configuration file does not match its schema; fix the fields named.',
  DF_ERR_CONFIG_READ: 'The configuration file could not be read or is not JSON.',
  DF_ERR_DATASET_MALFORMED: 'The received dataset could not be parsed; the sender must resend a valid object.',
  DF_ERR_DATASET_MISMATCH: 'The dataset contradicts its C-STORE command (SOP Class/Instance UID).',
  DF_ERR_DATASET_INCOMPLETE: 'The dataset lacks an attribute every stored object needs (Study, Series or SOP Instance UID).',
  DF_ERR_UID_INVALID: 'A UID is empty, longer than 64 characters or holds characters a UID cannot.',
  DF_ERR_DUPLICATE_REJECTED: 'An object with this SOP Instance UID is already stored and the duplicate policy is "reject".',
  DF_ERR_STORE_FULL: 'The storage root is out of space; free space or move the data directory.',
  DF_ERR_STORE_WRITE: 'Writing or syncing the object to disk failed.',
  DF_ERR_DATABASE:
    'The index database (SQLite file or PostgreSQL server) failed a statement or cannot be reached; the message names the reason. Received objects are not acknowledged until it answers again.',
  DF_ERR_DATABASE_UNKNOWN: 'No database of that name is configured.',
  DF_ERR_INDEX_MISSING:
    'The data directory has no index (index.sqlite): a command that reads or changes what a server recorded (jobs, nodes, the outbox, tokens, moves between databases) does not create one. Name the data directory the server uses (--data DIR, or dataDir in --config FILE).',
  DF_ERR_AE_UNKNOWN: 'The calling AE title is not on the allow-list of this server.',
  DF_ERR_CALLED_AE_UNKNOWN: 'The called AE title is not one this server answers to.',
  DF_ERR_PDU_INVALID: 'A peer sent a PDU of unknown type or larger than negotiated; the association was aborted.',
  DF_ERR_NO_ACCEPTABLE_CONTEXT:
    'The association proposed no presentation context this server accepts (SOP classes or transfer syntaxes it does not support, or malformed ones); it was rejected.',
  DF_ERR_TLS_REFUSED:
    'A TLS handshake on the DICOM TLS port failed (no or untrusted client certificate, no common TLS version or cipher); the connection was closed.',
  DF_ERR_USER_IDENTITY:
    'The association presented no user identity, an unknown user or a wrong passcode while dimse.requireUserIdentity asks for one; it was rejected. The passcode is an API token of the user.',
  DF_ERR_DICOM_ACCESS_DENIED:
    'The calling AE title, from its address, may not do this on the database (or DICOMDIR store) its called AE title leads to: a request gets status 0124 (Refused: Not Authorized), a caller allowed nothing there is rejected at association. Add it to databases[].dicomAccess (store, query, retrieve) or to remoteNodes with its host.',
  DF_ERR_HOST_UNRESOLVED:
    'A host named in remoteNodes or a dicomAccess list does not resolve; DICOM callers are not matched against it until it does (it is looked up again every minute).',
  DF_ERR_DATA_DIR_PERMISSIONS:
    'The data directory holds patient data but other local users may read or enter it (its mode is wider than 0700); run chmod 700 on it. New data directories are created 0700 and their files 0600.',
  DF_ERR_OPERATION_UNSUPPORTED:
    'The peer asked for a DIMSE service this server does not offer (N-CREATE, N-SET, N-GET, N-ACTION, N-DELETE, N-EVENT-REPORT: refused with status 0211), or sent a C-STORE on a presentation context not accepted for storage (refused with 0122 once its data set was read).',
  DF_ERR_COMMAND_INVALID:
    "A peer sent a DIMSE command set that cannot be read or served (malformed, no command field, message id or data set type, an unknown command field, a response to nothing, a presentation context not accepted) or broke the order of a message (a data set with no command, a new command before a request's data set ended); the association was aborted. A C-STORE whose data set is cut short by the next command is refused with C000 instead, and its partial file removed.",
  DF_ERR_ASSOCIATION_TIMEOUT:
    'A DICOM connection went quiet past a timer: no A-ASSOCIATE-RQ within dimse.artimTimeoutSeconds (or no close that long after the association ended), no PDU for dimse.associationTimeoutSeconds on an idle association, or a message not continued within dimse.pduTimeoutSeconds. The association was aborted and closed; an object it was sending was not kept.',
  DF_ERR_APPLICATION_CONTEXT_UNSUPPORTED:
    'The A-ASSOCIATE-RQ named an application context other than DICOM\'s (1.2.840.10008.3.1.1.1); it was rejected (permanent, "application context name not supported").',
  DF_ERR_TOO_MANY_ASSOCIATIONS:
    "More associations were open than dimse.maxAssociations allows, or than dimse.maxAssociationsPerPeer allows from the peer's address; the new one was rejected as transient (local limit exceeded), the sender should retry later.",
  DF_ERR_QUERY_INVALID: 'The C-FIND identifier is not valid for the query level or model.',
  DF_ERR_QUERY_RESPONSE_FAILED:
    'A C-FIND match could not be made into a response (its identifier could not be encoded, or building it failed): the C-FIND ended with status C000 (Unable to process) after the matches before it, its error comment saying which match and why. Stored values longer than their VR allows are not a cause: they are returned as stored.',
  DF_ERR_USAGE: 'The command line is not valid; see `dicomflow --help`.',
  DF_ERR_UNAUTHORIZED: 'The HTTP request has no valid bearer token (see <dataDir>/admin-token).',
  DF_ERR_TOO_MANY_EVENT_STREAMS:
    'The user already holds http.eventStreams.perUser live event streams (HTTP 429); close one (a browser tab) or raise the limit.',
  DF_ERR_EVENT_STREAMS_FULL:
    'The server already serves http.eventStreams.total live event streams (HTTP 503); retry later or raise the limit.',
  DF_ERR_PLUGIN_INVALID: 'A plugin failed its registration checks (name, version, kinds, engine range, options schema).',
  DF_ERR_STEP_FAILED: 'A pipeline step threw, timed out or crashed its worker; the job failed (see its log and cause).',
  DF_ERR_STEP_TIMEOUT: 'A pipeline step ran longer than its timeoutSeconds and was stopped.',
  DF_ERR_PROGRAM_FAILED: 'An external program exited non-zero, was killed, or could not be started.',
  DF_ERR_JOB_UNKNOWN: 'No job has that id.',
  DF_ERR_PIPELINE_UNKNOWN: 'No loaded pipeline has that name.',
  DF_ERR_PIPELINE_VERSION_UNKNOWN:
    'The job was queued before dicomflow kept the pipeline version of each job, so its version cannot run again: rerun it with the pipeline as loaded now (`dicomflow rerun ID --pipeline-version current`, or `{"pipelineVersion": "current"}` in the API).',
  DF_ERR_FORBIDDEN: 'The user lacks the role or the database right this action needs; an administrator can grant it in "users".',
  DF_ERR_NOT_FOUND: 'No study, series or patient with that UID or ID in the database.',
  DF_ERR_PEER_UNREACHABLE:
    'The peer could not be reached (connection refused, unknown host, TLS handshake failed or connect timeout); check host, port, TLS settings and that the peer runs.',
  DF_ERR_ASSOCIATION_REJECTED:
    'The peer rejected the association (A-ASSOCIATE-RJ); check the called and calling AE titles configured on both sides.',
  DF_ERR_ASSOCIATION_ABORTED:
    'The peer aborted the association or closed the connection before answering; objects not acknowledged were not stored, send them again.',
  DF_ERR_PEER_TIMEOUT: 'The peer did not answer, or stopped reading, within the response timeout; the association was aborted.',
  DF_ERR_CONTEXT_REJECTED:
    "The peer accepted no presentation context for the object's SOP class in its transfer syntax; routing transcodes to Explicit or Implicit VR Little Endian when the peer accepts one, C-MOVE and C-GET do not transcode yet.",
  DF_ERR_FILE_READ: 'A stored file to be sent could not be opened or read.',
  DF_ERR_AE_TITLE_INVALID: 'An AE title is empty, longer than 16 characters, or holds a backslash or control characters.',
  DF_ERR_PIPELINE_INVALID: 'A pipeline definition does not match its schema or refers to unknown parts.',
  DF_ERR_PIXEL_DECODE:
    'The pixel data could not be read or decoded (unsupported transfer syntax or bit depth, corrupt codestream, missing frames).',
  DF_ERR_VOI_INVALID:
    'A VOI cannot be used or none was given (unreadable label map or table, SEG of another frame of reference or undecodable, no PET series among the inputs); the message names the VOI source.',
  DF_ERR_VOLUME_INCONSISTENT:
    'The images do not form one volume (missing slice, uneven spacing, gantry tilt, mixed orientations, sizes or series); the message names the problem and the slices.',
  DF_ERR_REQUEST_INVALID:
    "The HTTP request does not match the route's schema (unknown or missing property, wrong type); the message names the field.",
  DF_ERR_ROUTE_UNKNOWN: 'No HTTP route has that method and path; see the OpenAPI document at /api/openapi.json.',
  DF_ERR_OUTPUT_UNKNOWN: 'The job has no downloadable file output with that index, or its file is gone.',
  DF_ERR_TOKEN_UNKNOWN: 'No API token has that id.',
  DF_ERR_INTERNAL: 'An unexpected server error; the server log has the details under the request id.',
  DF_ERR_SERVER_UNREACHABLE:
    'No dicomflow server answers for this data directory; start it with `dicomflow serve`, or name it with --server URL.',
  DF_ERR_DESTINATION_UNKNOWN:
    'No remote node with that AE title is configured in remoteNodes; routing and outbox commands name destinations by AE title.',
  DF_ERR_STORE_REFUSED:
    'The peer answered C-STORE with a failure status (e.g. A700 out of resources); the outbox retries the object with backoff.',
  DF_ERR_DELIVERY_FAILED:
    'Objects routed with "wait" went to the dead letters after their last attempt; see `dicomflow outbox`, fix the destination, then `dicomflow outbox retry`.',
  DF_ERR_PRINTER_UNKNOWN: 'No printer of that name is configured in "printers".',
  DF_ERR_PRINT_FAILED:
    'The printer could not be reached, refused the job, or the job ended aborted or canceled; the step log has the IPP status.',
  DF_ERR_PRINT_TIMEOUT:
    'The print job did not complete within waitSeconds; it stays on the printer, and a rerun finds it by its job name instead of printing again.',
  DF_ERR_MOTION_CORRECTION:
    'Motion correction cannot run on these inputs (a series with one frame, a reference frame or time window with no frame in it), or a frame failed its checks with requireConvergence set; the message says which.',
  DF_ERR_NOT_ACCEPTABLE:
    'The Accept header of a DICOMweb request names no media type or transfer syntax this server can send for the resource (HTTP 406); the message lists what it can send.',
  DF_ERR_MEDIA_TYPE_UNSUPPORTED:
    'A DICOMweb STOW-RS request body is not multipart/related with type application/dicom and a boundary (HTTP 415).',
  DF_ERR_DEIDENTIFY_REFUSED:
    'The deidentify step met an object that may show identifying text or a face in its pixels (Burned In Annotation or Recognizable Visual Features YES, or a secondary capture, ultrasound or camera image without Burned In Annotation NO) while its burnedInAnnotation option is "fail"; take the object out, or let the step leave such objects out ("refuse").',
} as const;

export type ErrorCode = keyof typeof errorCodes;

export class DfError extends Error {
  readonly code: ErrorCode;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(`${code}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DfError';
    this.code = code;
    this.details = options?.details;
  }
}

/** The one factory for user-facing errors. */
export function dfError(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }): DfError {
  return new DfError(code, message, options);
}

export function isDfError(err: unknown, code?: ErrorCode): err is DfError {
  return err instanceof DfError && (code === undefined || err.code === code);
}
