/**
 * Content negotiation of PS3.18 8.7: what a client's Accept header lets us answer. Each function
 * returns the first acceptable choice in the client's order of preference, or throws
 * DF_ERR_NOT_ACCEPTABLE (406) saying what we could have sent.
 */
import { canTranscode } from '../../../core/dicom/transcode.ts';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../../core/dicom/transfer-syntaxes.ts';
import { dfError } from '../../../core/errors.ts';
import { frameMediaType } from './media-types.ts';
import { mediaTypeParameters, splitOutsideQuotes } from './multipart.ts';

interface MediaRange {
  mediaType: string;
  parameters: Record<string, string>;
  q: number;
}

export function parseAccept(header: string | undefined): MediaRange[] {
  if (header === undefined || header.trim() === '') return [{ mediaType: '*/*', parameters: {}, q: 1 }];
  const ranges = splitOutsideQuotes(header, ',')
    .filter((r) => r.trim() !== '')
    .map((r, order) => {
      const { mediaType, parameters } = mediaTypeParameters(r);
      const q = parameters.q === undefined ? 1 : Number(parameters.q);
      return { mediaType, parameters, q: Number.isFinite(q) ? q : 0, order };
    })
    .filter((r) => r.q > 0);
  return ranges.sort((a, b) => b.q - a.q || a.order - b.order);
}

const notAcceptable = (header: string | undefined, offer: string) =>
  dfError('DF_ERR_NOT_ACCEPTABLE', `nothing in Accept: ${header ?? ''} can be sent; this resource is available as ${offer}`);

/** QIDO results and metadata: DICOM JSON (PS3.18 F.2); application/json is accepted as its synonym. */
export function negotiateDicomJson(header: string | undefined): void {
  const ok = parseAccept(header).some((r) => ['*/*', 'application/*', 'application/dicom+json', 'application/json'].includes(r.mediaType));
  if (!ok) throw notAcceptable(header, 'application/dicom+json');
}

/** How each instance of a retrieval goes out: its stored bytes, or transcoded to a transfer syntax. */
export type InstanceEncoding = { kind: 'original' } | { kind: 'transcode'; transferSyntaxUid: string };

/**
 * Instances as multipart/related; type="application/dicom". Without a transfer-syntax parameter,
 * or with `*`, every instance goes as it is stored; with a UID, instances in another syntax are
 * transcoded when we can (to Explicit or Implicit VR Little Endian), else the range is unusable.
 */
export function negotiateInstances(header: string | undefined, storedSyntaxes: readonly string[]): (stored: string) => InstanceEncoding {
  for (const range of parseAccept(header)) {
    const type = (range.parameters.type ?? 'application/dicom').toLowerCase();
    const fits =
      range.mediaType === '*/*' ||
      range.mediaType === 'multipart/*' ||
      (range.mediaType === 'multipart/related' && type === 'application/dicom');
    if (!fits) continue;
    const wanted = range.parameters['transfer-syntax'];
    if (wanted === undefined || wanted === '*') return () => ({ kind: 'original' });
    const transcodable = wanted === EXPLICIT_VR_LE || wanted === IMPLICIT_VR_LE;
    if (storedSyntaxes.every((ts) => ts === wanted || (transcodable && canTranscode(ts)))) {
      return (stored) => (stored === wanted ? { kind: 'original' } : { kind: 'transcode', transferSyntaxUid: wanted });
    }
  }
  throw notAcceptable(
    header,
    `multipart/related; type="application/dicom" in transfer syntax ${[...new Set(storedSyntaxes)].join(', ')} (as stored), ${EXPLICIT_VR_LE} or ${IMPLICIT_VR_LE}`,
  );
}

/** Frames and pixel bulk data: as stored (native bytes or the compressed codestream), or decoded to native. */
export function negotiateFrames(header: string | undefined, storedSyntax: string): { decode: boolean } {
  const stored = frameMediaType(storedSyntax);
  for (const range of parseAccept(header)) {
    const type = (
      range.parameters.type ?? (range.mediaType === 'multipart/related' ? 'application/octet-stream' : range.mediaType)
    ).toLowerCase();
    const wanted = range.parameters['transfer-syntax'];
    if (range.mediaType !== 'multipart/related' && range.mediaType !== '*/*' && range.mediaType !== 'multipart/*') continue;
    if (type === '*/*' || wanted === '*') return { decode: false };
    if (type === 'application/octet-stream') {
      if (wanted === undefined || wanted === EXPLICIT_VR_LE) return { decode: stored !== 'application/octet-stream' };
      continue;
    }
    if (type === stored && (wanted === undefined || wanted === storedSyntax)) return { decode: false };
  }
  throw notAcceptable(
    header,
    `multipart/related; type="${stored}"${stored === 'application/octet-stream' ? '' : ' (as stored) or type="application/octet-stream" (decoded)'}`,
  );
}

/** Rendered images: JPEG (the default) or PNG. */
export function negotiateRendered(header: string | undefined): 'jpeg' | 'png' {
  for (const range of parseAccept(header)) {
    if (range.mediaType === 'image/png') return 'png';
    if (['*/*', 'image/*', 'image/jpeg'].includes(range.mediaType)) return 'jpeg';
  }
  throw notAcceptable(header, 'image/jpeg or image/png');
}
