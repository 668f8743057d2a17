import { useEffect, useState } from 'preact/hooks';
import { api } from './api.ts';

type Schema = {
  type?: string | string[];
  description?: string;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  default?: unknown;
};
type Parameter = { name: string; in: string; required?: boolean; description?: string; schema?: Schema };
type Operation = {
  summary?: string;
  tags?: string[];
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { description?: string }>;
};
type Document = {
  info: { title: string; version: string; description?: string };
  tags?: { name: string; description?: string }[];
  paths: Record<string, Record<string, Operation>>;
};

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

const typeOf = (s: Schema | undefined): string =>
  !s
    ? ''
    : s.enum
      ? s.enum.map((v) => JSON.stringify(v)).join(' | ')
      : s.type === 'array'
        ? `${typeOf(s.items)}[]`
        : Array.isArray(s.type)
          ? s.type.join(' | ')
          : (s.type ?? 'any');

/**
 * The HTTP API's reference, read from the server's own OpenAPI document (behind the token like
 * every route): each route by tag with its summary, parameters, body fields and answers.
 */
export function ApiReference({ onError }: { onError: (m: string) => void }) {
  const [doc, setDoc] = useState<Document>();
  const [filter, setFilter] = useState('');
  useEffect(() => {
    api.openapi().then(
      (d) => setDoc(d as Document),
      (err) => onError(err.message),
    );
  }, []);
  if (!doc) return <section class="panel">Loading the API reference…</section>;
  const operations = Object.entries(doc.paths).flatMap(([route, ops]) =>
    METHODS.filter((m) => ops[m]).map((m) => ({ route, method: m.toUpperCase(), op: ops[m], tag: ops[m].tags?.[0] ?? 'other' })),
  );
  const shown = operations.filter(
    (o) => !filter || `${o.method} ${o.route} ${o.op.summary ?? ''}`.toLowerCase().includes(filter.toLowerCase()),
  );
  const tags = [...new Set([...(doc.tags ?? []).map((t) => t.name), ...shown.map((o) => o.tag)])].filter((t) =>
    shown.some((o) => o.tag === t),
  );
  return (
    <section class="panel api-reference" data-testid="api-reference">
      <h2>
        {doc.info.title} <small>{doc.info.version}</small>
      </h2>
      {doc.info.description && <p class="hint">{doc.info.description}</p>}
      <p>
        <input placeholder="find a route" value={filter} onInput={(e) => setFilter(e.currentTarget.value)} name="find" />{' '}
        <span class="hint">{shown.length} route(s); the document itself: GET /api/openapi.json</span>
      </p>
      {tags.map((tag) => (
        <div key={tag} data-tag={tag}>
          <h3>
            {tag} <span class="hint">{doc.tags?.find((t) => t.name === tag)?.description}</span>
          </h3>
          {shown
            .filter((o) => o.tag === tag)
            .map(({ route, method, op }) => {
              const body = Object.values(op.requestBody?.content ?? {})[0]?.schema;
              return (
                <details key={`${method} ${route}`} data-route={`${method} ${route}`}>
                  <summary>
                    <code class={`method ${method.toLowerCase()}`}>{method}</code> <code>{route}</code> — {op.summary}
                  </summary>
                  {(op.parameters ?? []).length > 0 && (
                    <table>
                      <tbody>
                        {op.parameters!.map((p) => (
                          <tr key={`${p.in}-${p.name}`}>
                            <td>
                              <code>{p.name}</code>
                              {p.required ? ' *' : ''}
                            </td>
                            <td>{p.in}</td>
                            <td>{typeOf(p.schema)}</td>
                            <td>{p.description ?? p.schema?.description}</td>
                          </tr>
                        ))}
                      </tbody>
                    </table>
                  )}
                  {body?.properties && (
                    <>
                      <h4>Body</h4>
                      <table>
                        <tbody>
                          {Object.entries(body.properties).map(([name, s]) => (
                            <tr key={name}>
                              <td>
                                <code>{name}</code>
                                {body.required?.includes(name) ? ' *' : ''}
                              </td>
                              <td>{typeOf(s)}</td>
                              <td>{s.description}</td>
                            </tr>
                          ))}
                        </tbody>
                      </table>
                    </>
                  )}
                  <p class="hint">
                    Answers:{' '}
                    {Object.entries(op.responses ?? {})
                      .map(([code, r]) => `${code}${r.description && r.description !== 'Default Response' ? ` (${r.description})` : ''}`)
                      .join(', ')}
                  </p>
                </details>
              );
            })}
        </div>
      ))}
    </section>
  );
}
