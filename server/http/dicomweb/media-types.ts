import { transferSyntaxByUid } from '../../../core/dicom/transfer-syntaxes.ts';

/** PS3.18 Table 8.7.3-5: the media type of frames in a transfer syntax. */
export function frameMediaType(transferSyntaxUid: string): string {
  const ts = transferSyntaxByUid(transferSyntaxUid);
  if (!ts?.encapsulated) return 'application/octet-stream';
  const uid = transferSyntaxUid;
  if (['1.2.840.10008.1.2.4.50', '1.2.840.10008.1.2.4.51', '1.2.840.10008.1.2.4.57', '1.2.840.10008.1.2.4.70'].includes(uid))
    return 'image/jpeg';
  if (uid === '1.2.840.10008.1.2.4.80' || uid === '1.2.840.10008.1.2.4.81') return 'image/jls';
  if (uid === '1.2.840.10008.1.2.4.90' || uid === '1.2.840.10008.1.2.4.91') return 'image/jp2';
  if (uid === '1.2.840.10008.1.2.4.92' || uid === '1.2.840.10008.1.2.4.93') return 'image/jpx';
  if (uid.startsWith('1.2.840.10008.1.2.4.20')) return 'image/jphc';
  if (uid.startsWith('1.2.840.10008.1.2.4.11')) return 'image/jxl';
  if (uid === '1.2.840.10008.1.2.5') return 'image/dicom-rle';
  if (uid.startsWith('1.2.840.10008.1.2.4.100') || uid.startsWith('1.2.840.10008.1.2.4.101')) return 'video/mpeg';
  if (uid.startsWith('1.2.840.10008.1.2.4.10')) return 'video/mp4';
  return 'application/octet-stream';
}
