import type { FromSchema } from 'json-schema-to-ts';

const aeTitle = {
  type: 'string',
  minLength: 1,
  maxLength: 16,
  // PS3.5 6.2: AE is 16 characters of the default repertoire, no backslash or control characters.
  pattern: '^[ -\\[\\]-~]*[!-\\[\\]-~][ -\\[\\]-~]*$',
} as const;

// Who may use a database over DICOM (databases[].dicomAccess, dicomdirStores[].dicomAccess).
const dicomCaller = {
  anyOf: [
    { ...aeTitle, description: 'A calling AE title, from any host; one that names a remote node is admitted from that node’s host only.' },
    {
      type: 'object',
      additionalProperties: false,
      required: ['aeTitle', 'host'],
      properties: {
        aeTitle,
        host: { type: 'string', minLength: 1, description: 'Host name or IP address the caller must connect from (names are resolved).' },
      },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['remoteNodes'],
      properties: { remoteNodes: { const: true, description: 'Every AE title of remoteNodes, each from its own host.' } },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['loopback'],
      properties: { loopback: { const: true, description: 'Any AE title connecting from this machine (127.0.0.0/8, ::1).' } },
    },
    {
      type: 'object',
      additionalProperties: false,
      required: ['anyone'],
      properties: { anyone: { const: true, description: 'Any AE title from any host.' } },
    },
  ],
} as const;

const queryCallers = {
  type: 'array',
  items: dicomCaller,
  default: [{ remoteNodes: true }, { loopback: true }],
  description:
    'Who may C-FIND. Default: the remote nodes (each from its host) and any AE title on this machine. A list replaces the default: only what it names, loopback included.',
} as const;

const retrieveCallers = {
  type: 'array',
  items: dicomCaller,
  default: [{ remoteNodes: true }, { loopback: true }],
  description:
    'Who may C-MOVE and C-GET. Default: the remote nodes (each from its host) and any AE title on this machine. A list replaces the default: only what it names, loopback included.',
} as const;

const storeCallers = {
  type: 'array',
  items: dicomCaller,
  default: [{ anyone: true }],
  description: 'Who may C-STORE into the database. Default: anyone. A list replaces the default: only what it names.',
} as const;

/**
 * The server configuration. Defaults live here (ajv `useDefaults`), not in code, so that the
 * published schema (schemas/config.schema.json) documents exactly what a missing field means.
 */
export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://dicomflow.dev/schemas/config.schema.json',
  title: 'dicomflow server configuration',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string' },
    dataDir: {
      type: 'string',
      default: './data',
      description:
        'Root of everything dicomflow keeps: objects, index, spool. Relative paths resolve against the configuration file (or the working directory without one).',
    },
    dimse: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        aeTitle: { ...aeTitle, default: 'DICOMFLOW', description: 'The AE title this server answers to.' },
        host: {
          type: 'string',
          default: '0.0.0.0',
          description:
            'Address the DICOM listener binds: 0.0.0.0 every IPv4 interface, 127.0.0.1 this machine only, or one interface’s address.',
        },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 11112 },
        maxPduLength: {
          type: 'integer',
          minimum: 4096,
          maximum: 262144,
          // Measured with storescu here: 16-128 KiB PDUs give the same throughput, 256 KiB is
          // 40 % slower (bench/ingest).
          default: 65536,
          description: 'Largest P-DATA-TF PDU this server accepts (bytes); announced in A-ASSOCIATE-AC.',
        },
        maxAssociations: {
          type: 'integer',
          minimum: 1,
          default: 64,
          description: 'Associations open at once; more are rejected with "local limit exceeded".',
        },
        maxAssociationsPerPeer: {
          type: 'integer',
          minimum: 1,
          default: 16,
          description:
            'Associations open at once from one peer IP address (so one host cannot take every slot); more are rejected with "local limit exceeded".',
        },
        checkCalledAeTitle: {
          type: 'boolean',
          default: false,
          description: 'Reject associations whose called AE title is neither dimse.aeTitle nor a database AE title.',
        },
        allowedCallers: {
          description:
            'If set, only these calling AE titles (optionally from these hosts) may associate; others get A-ASSOCIATE-RJ "calling AE title not recognized".',
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['aeTitle'],
            properties: {
              aeTitle,
              host: { type: 'string', description: 'IP address the caller must come from.' },
            },
          },
        },
        acceptUnknownSopClasses: {
          type: 'boolean',
          default: false,
          description: 'Also accept private/unknown SOP classes for storage (their objects are kept byte for byte like any other).',
        },
        associationTimeoutSeconds: {
          type: 'integer',
          minimum: 1,
          default: 60,
          description:
            'Idle association timeout: an open association with nothing in progress (no message coming, no request being answered) and no PDU either way for this long is aborted (A-ABORT) and closed.',
        },
        pduTimeoutSeconds: {
          type: 'integer',
          minimum: 1,
          default: 60,
          description:
            "DIMSE timeout: while a peer's message is in progress (a PDU, command or data set begun), or a C-STORE of C-GET waits for its response, the peer's next bytes must come within this time; else the association is aborted and a partly received object removed.",
        },
        artimTimeoutSeconds: {
          type: 'integer',
          minimum: 1,
          default: 30,
          description:
            'ARTIM (PS3.8 9.1.5): a connection that sends no A-ASSOCIATE-RQ within this time, or that stays open this long after its association was rejected, released or aborted, is closed. Also bounds the TLS handshake.',
        },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['port', 'certFile', 'keyFile'],
          description:
            'DICOM over TLS (PS3.15 B.1): a second listener beside the plain port (or instead of it, with "only"). Paths are relative to the configuration file.',
          properties: {
            port: { type: 'integer', minimum: 0, maximum: 65535, description: 'TLS port (2762 is the registered DICOM TLS port).' },
            certFile: { type: 'string', description: "PEM file with the server's certificate (and its chain)." },
            keyFile: { type: 'string', description: "PEM file with the server's private key." },
            caFile: { type: 'string', description: 'PEM file of the CAs client certificates must chain to.' },
            requireClientCertificate: {
              type: 'boolean',
              default: false,
              description: 'Mutual TLS: refuse peers without a certificate signed by caFile.',
            },
            only: { type: 'boolean', default: false, description: 'Do not open the plain (non-TLS) port.' },
          },
        },
        requireUserIdentity: {
          enum: ['off', 'username', 'passcode'],
          default: 'off',
          description:
            'User Identity Negotiation (PS3.7 D.3.3.7): "username" requires the name of a configured user; "passcode" also its passcode, an API token of that user (`dicomflow token create --user NAME`). Others get A-ASSOCIATE-RJ; the user is recorded with each arrival.',
        },
      },
    },
    http: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: {
          type: 'string',
          default: '0.0.0.0',
          description:
            'Address the HTTP API and web page bind: 0.0.0.0 every IPv4 interface, 127.0.0.1 this machine only, or one interface’s address.',
        },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8080 },
        eventStreams: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'Open live event streams (GET /api/events) allowed at once; one more is refused until one closes.',
          properties: {
            perUser: {
              type: 'integer',
              minimum: 1,
              default: 8,
              description: 'Per user (a browser tab holds one): more get 429 DF_ERR_TOO_MANY_EVENT_STREAMS.',
            },
            total: {
              type: 'integer',
              minimum: 1,
              default: 100,
              description: 'All users together: more get 503 DF_ERR_EVENT_STREAMS_FULL.',
            },
          },
        },
        tls: {
          type: 'object',
          additionalProperties: false,
          required: ['certFile', 'keyFile'],
          description: 'Serve the HTTP API and web page over HTTPS. Paths are relative to the configuration file.',
          properties: {
            certFile: { type: 'string', description: 'PEM certificate (and chain).' },
            keyFile: { type: 'string', description: 'PEM private key.' },
          },
        },
      },
    },
    storage: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        duplicatePolicy: {
          enum: ['keep-first', 'replace', 'reject'],
          default: 'keep-first',
          description:
            'What a second object with a SOP Instance UID already in the database does: keep-first acknowledges it, keeps the first and records the duplicate; replace indexes the new one instead (the old bytes stay on disk, recorded); reject answers C-STORE with a failure status.',
        },
        minFreeMegabytes: {
          type: 'integer',
          minimum: 0,
          default: 512,
          description:
            'Refuse new objects (C-STORE status A700, out of resources) when the storage root has this much free space or less; /api/health then reports storage as not ok.',
        },
      },
    },
    pipelinesDir: {
      type: 'string',
      default: './pipelines',
      description:
        'Directory of pipeline definitions (*.json), reloaded when they change. Relative to the configuration file, or the working directory.',
    },
    defaultPipeline: {
      type: 'boolean',
      default: true,
      description:
        'Run the built-in pipeline "store-received" (file every arrival into the database of its called AE title) unless a pipeline file of that name replaces it. Off: received objects are filed only where pipelines say.',
    },
    plugins: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        directories: {
          type: 'array',
          items: { type: 'string' },
          default: [],
          description: 'Extra plugin folders (each subfolder with an index.ts/js).',
        },
        packages: {
          type: 'array',
          items: { type: 'string' },
          default: [],
          description: 'npm packages whose default export is a plugin or a list of plugins.',
        },
      },
    },
    engine: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        concurrency: {
          type: 'integer',
          minimum: 1,
          default: 16,
          description:
            'Jobs in progress at once on this node. CPU-heavy steps wait for a pool thread without holding up quick jobs, so this can exceed the pool size.',
        },
        workerThreads: { type: 'integer', minimum: 1, description: 'Threads of the step worker pool; default: the number of CPU cores.' },
        workerMaxMemoryMb: {
          type: 'integer',
          minimum: 64,
          default: 4096,
          description: 'V8 heap limit of each worker (process or thread).',
        },
        isolation: {
          enum: ['process', 'thread'],
          default: 'process',
          description:
            'How CPU-heavy steps are kept apart from the server: worker processes (a step that exhausts its memory cannot take the server down) or threads (no process start-up, typed arrays moved instead of copied; a thread that exhausts its heap can abort the whole server, Node issue #47224).',
        },
      },
    },
    index: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description:
        'Where the index lives: the database of objects, arrivals, jobs, stable-trigger timers, the routing outbox and API tokens.',
      properties: {
        backend: {
          enum: ['sqlite', 'postgres'],
          default: 'sqlite',
          description:
            'sqlite: one file, <dataDir>/index.sqlite, for one node. postgres: a PostgreSQL server that several nodes share (with one shared dataDir); see docs/deployment.md.',
        },
        url: {
          type: 'string',
          pattern: '^postgres(ql)?://',
          description:
            'PostgreSQL connection URL (backend "postgres"), e.g. postgres://dicomflow@db.example.org/dicomflow. A password may come from PGPASSWORD or ~/.pgpass instead of the URL.',
        },
        statementTimeoutSeconds: {
          type: 'integer',
          minimum: 1,
          default: 60,
          description: 'PostgreSQL cancels a statement that runs longer.',
        },
        poolSize: {
          type: 'integer',
          minimum: 2,
          maximum: 200,
          default: 10,
          description:
            'PostgreSQL connections this node keeps for its statements (a transaction holds one while it runs); two more flush the WAL and answer the health probe.',
        },
      },
    },
    cluster: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        nodeName: {
          type: 'string',
          pattern: '^[A-Za-z0-9_.:-]{1,64}$',
          description:
            "This node's name among the nodes sharing a PostgreSQL index: it owns the leases of the jobs it runs. Unique per node; default: the host name (several nodes on one host must each set one).",
        },
        leaseSeconds: {
          type: 'integer',
          minimum: 3,
          default: 30,
          description:
            "A running job's lease; renewed every third of it. When a node dies, another node takes its jobs over once their leases expire.",
        },
      },
    },
    defaultDatabase: { type: 'string', default: 'Import', description: 'Database used when the called AE title maps to none.' },
    databases: {
      type: 'array',
      default: [{ name: 'Import' }],
      minItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
          aeTitle: { ...aeTitle, description: 'Called AE title that stores into / queries this database.' },
          description: { type: 'string' },
          dicomAccess: {
            type: 'object',
            additionalProperties: false,
            default: {},
            description:
              'Who may store, query and retrieve this database over DICOM (as Orthanc since 1.9: storing open, query and retrieve for known nodes). A caller allowed none of them is rejected at association (A-ASSOCIATE-RJ, calling AE title not recognized); a refused request gets status 0124 (Refused: Not Authorized).',
            properties: { store: storeCallers, query: queryCallers, retrieve: retrieveCallers },
          },
        },
      },
    },
    dicomdirStores: {
      type: 'array',
      default: [],
      description: 'DICOM file-sets kept by the dicomdir step that answer C-FIND, C-MOVE and C-GET under their own called AE title.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['aeTitle', 'root'],
        properties: {
          aeTitle,
          root: {
            type: 'string',
            description:
              "The file-set's root, as in the dicomdir step's options; relative to the configuration file, or the working directory.",
          },
          dicomAccess: {
            type: 'object',
            additionalProperties: false,
            default: {},
            description:
              'Who may query and retrieve this file-set over DICOM, as for a database (C-STOREs to its AE title go to defaultDatabase and follow its rule).',
            properties: { query: queryCallers, retrieve: retrieveCallers },
          },
        },
      },
    },
    remoteNodes: {
      type: 'array',
      default: [],
      description: 'DICOM nodes this server sends to: C-MOVE destinations, replication sources, routing targets.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['aeTitle', 'host', 'port'],
        properties: {
          aeTitle,
          host: { type: 'string', minLength: 1 },
          port: { type: 'integer', minimum: 1, maximum: 65535 },
          tls: {
            type: 'boolean',
            default: false,
            description: 'DICOM over TLS (PS3.15 B.1), verifying the peer against the system CAs, or tlsCaFile.',
          },
          tlsCaFile: {
            type: 'string',
            description: "PEM file of the CAs the node's certificate must chain to (instead of the system CAs).",
          },
          tlsCertFile: { type: 'string', description: 'PEM certificate presented to the node (mutual TLS); with tlsKeyFile.' },
          tlsKeyFile: { type: 'string', description: 'PEM private key of tlsCertFile.' },
          description: { type: 'string' },
          outbox: {
            type: 'object',
            additionalProperties: false,
            default: {},
            description:
              'Routing to this node (the route step): objects wait in a durable outbox and are retried with exponential backoff.',
            properties: {
              concurrency: { type: 'integer', minimum: 1, maximum: 16, default: 2, description: 'Associations open to this node at once.' },
              maxAttempts: {
                type: 'integer',
                minimum: 1,
                default: 10,
                description: 'Attempts before an object goes to the dead letters (`dicomflow outbox retry` reschedules them).',
              },
              initialRetrySeconds: {
                type: 'number',
                exclusiveMinimum: 0,
                default: 10,
                description: 'Wait after the first failed attempt; doubled after each further one.',
              },
              maxRetrySeconds: { type: 'number', exclusiveMinimum: 0, default: 3600, description: 'Longest wait between attempts.' },
              batchSize: {
                type: 'integer',
                minimum: 1,
                maximum: 1000,
                default: 100,
                description: 'Objects sent on one association at most.',
              },
            },
          },
        },
      },
    },
    printers: {
      type: 'array',
      default: [],
      description: 'IPP printers the print-report step prints to, named in its "printer" option.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'uri'],
        properties: {
          name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
          uri: {
            type: 'string',
            pattern: '^ipps?://[^/\\s]+(/\\S*)?$',
            description: 'The printer’s IPP URI, e.g. ipp://printer.example:631/ipp/print (port 631 when none is given; ipps:// for TLS).',
          },
          description: { type: 'string' },
        },
      },
    },
    users: {
      type: 'array',
      default: [],
      description:
        'Users, their role and their rights per database ("*" for all); write includes read. Moving or copying needs manager or admin, read on the source (write to move) and write on the target.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'role'],
        properties: {
          name: { type: 'string', minLength: 1, maxLength: 64 },
          role: { enum: ['admin', 'manager', 'operator', 'reader'] },
          databases: { type: 'object', additionalProperties: { enum: ['read', 'write'] } },
        },
      },
    },
    watchFolders: {
      type: 'array',
      default: [],
      description:
        'Folders scanned continuously; a file is imported once it stopped growing, then moved to done/ (or failed/ with a reason).',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['path'],
        properties: {
          path: { type: 'string', description: 'Relative to the configuration file, or the working directory.' },
          database: { type: 'string', description: 'Database the arrivals are addressed to; default: defaultDatabase.' },
          stableSeconds: {
            type: 'number',
            minimum: 0,
            default: 2,
            description: 'A file is imported once its size and time stayed the same this long.',
          },
          pollSeconds: { type: 'number', exclusiveMinimum: 0, default: 1 },
        },
      },
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: { enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' },
        format: {
          enum: ['json', 'pretty'],
          default: 'json',
          description:
            'json: one pino JSON object a line, for log shippers. pretty: coloured, one readable line an entry, for a terminal (pino-pretty).',
        },
      },
    },
  },
} as const;

export type Config = FromSchema<typeof configSchema, { keepDefaultedPropertiesOptional: false }>;
