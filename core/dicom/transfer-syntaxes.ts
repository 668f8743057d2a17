/**
 * DICOM Transfer Syntaxes (PS3.5 Section 10 and Annex A) with their PS3.6 Table A-1 keywords.
 *
 * Sources: PS3.6 Table A-1 as carried by pydicom's `_uid_dict.py` (names, keywords, retired
 * flags) and DCMTK's `dcmdata/libsrc/dcxfer.cc` (byte order, VR type, encapsulation, deflate).
 * Left out on purpose: RFC 2557 MIME and XML Encoding (retired; not a byte encoding of a data
 * set), Papyrus 3 Implicit VR LE (retired, private to Papyrus files) and the SMPTE ST 2110
 * syntaxes (DICOM-RTV streams only, never in a stored object or an association).
 */

export interface TransferSyntax {
  readonly uid: string;
  /** PS3.6 keyword, e.g. `ExplicitVRLittleEndian`, `JPEGBaseline8Bit`. */
  readonly keyword: string;
  readonly name: string;
  readonly explicitVr: boolean;
  readonly littleEndian: boolean;
  /**
   * Pixel Data is encapsulated: a Basic Offset Table then fragments (PS3.5 A.4). False for the
   * JPIP syntaxes, whose objects carry a Pixel Data Provider URL instead of Pixel Data.
   */
  readonly encapsulated: boolean;
  /** The whole data set after the File Meta Information is deflated (PS3.5 A.5, RFC 1951). */
  readonly deflated: boolean;
  readonly retired: boolean;
}

export const IMPLICIT_VR_LE = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
export const EXPLICIT_VR_BE = '1.2.840.10008.1.2.2';
export const DEFLATED_EXPLICIT_VR_LE = '1.2.840.10008.1.2.1.99';

// All but Implicit VR LE and Explicit VR BE encode the data set as Explicit VR Little Endian,
// encapsulated pixel data included (PS3.5 A.4).
const explicitLe = { explicitVr: true, littleEndian: true, deflated: false } as const;

export const transferSyntaxes: readonly TransferSyntax[] = [
  {
    uid: IMPLICIT_VR_LE,
    keyword: 'ImplicitVRLittleEndian',
    name: 'Implicit VR Little Endian',
    explicitVr: false,
    littleEndian: true,
    encapsulated: false,
    deflated: false,
    retired: false,
  },
  {
    uid: EXPLICIT_VR_LE,
    keyword: 'ExplicitVRLittleEndian',
    name: 'Explicit VR Little Endian',
    ...explicitLe,
    encapsulated: false,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.1.98',
    keyword: 'EncapsulatedUncompressedExplicitVRLittleEndian',
    name: 'Encapsulated Uncompressed Explicit VR Little Endian',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: DEFLATED_EXPLICIT_VR_LE,
    keyword: 'DeflatedExplicitVRLittleEndian',
    name: 'Deflated Explicit VR Little Endian',
    ...explicitLe,
    deflated: true,
    encapsulated: false,
    retired: false,
  },
  {
    uid: EXPLICIT_VR_BE,
    keyword: 'ExplicitVRBigEndian',
    name: 'Explicit VR Big Endian',
    explicitVr: true,
    littleEndian: false,
    encapsulated: false,
    deflated: false,
    retired: true,
  },

  // JPEG (PS3.5 A.4.1): only processes 1, 2+4, 14 and 14 SV1 survive; the rest are retired.
  {
    uid: '1.2.840.10008.1.2.4.50',
    keyword: 'JPEGBaseline8Bit',
    name: 'JPEG Baseline (Process 1)',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.51',
    keyword: 'JPEGExtended12Bit',
    name: 'JPEG Extended (Process 2 and 4)',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.52',
    keyword: 'JPEGExtended35',
    name: 'JPEG Extended (Process 3 and 5)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.53',
    keyword: 'JPEGSpectralSelectionNonHierarchical68',
    name: 'JPEG Spectral Selection, Non-Hierarchical (Process 6 and 8)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.54',
    keyword: 'JPEGSpectralSelectionNonHierarchical79',
    name: 'JPEG Spectral Selection, Non-Hierarchical (Process 7 and 9)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.55',
    keyword: 'JPEGFullProgressionNonHierarchical1012',
    name: 'JPEG Full Progression, Non-Hierarchical (Process 10 and 12)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.56',
    keyword: 'JPEGFullProgressionNonHierarchical1113',
    name: 'JPEG Full Progression, Non-Hierarchical (Process 11 and 13)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.57',
    keyword: 'JPEGLossless',
    name: 'JPEG Lossless, Non-Hierarchical (Process 14)',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.58',
    keyword: 'JPEGLosslessNonHierarchical15',
    name: 'JPEG Lossless, Non-Hierarchical (Process 15)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.59',
    keyword: 'JPEGExtendedHierarchical1618',
    name: 'JPEG Extended, Hierarchical (Process 16 and 18)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.60',
    keyword: 'JPEGExtendedHierarchical1719',
    name: 'JPEG Extended, Hierarchical (Process 17 and 19)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.61',
    keyword: 'JPEGSpectralSelectionHierarchical2022',
    name: 'JPEG Spectral Selection, Hierarchical (Process 20 and 22)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.62',
    keyword: 'JPEGSpectralSelectionHierarchical2123',
    name: 'JPEG Spectral Selection, Hierarchical (Process 21 and 23)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.63',
    keyword: 'JPEGFullProgressionHierarchical2426',
    name: 'JPEG Full Progression, Hierarchical (Process 24 and 26)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.64',
    keyword: 'JPEGFullProgressionHierarchical2527',
    name: 'JPEG Full Progression, Hierarchical (Process 25 and 27)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.65',
    keyword: 'JPEGLosslessHierarchical28',
    name: 'JPEG Lossless, Hierarchical (Process 28)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.66',
    keyword: 'JPEGLosslessHierarchical29',
    name: 'JPEG Lossless, Hierarchical (Process 29)',
    ...explicitLe,
    encapsulated: true,
    retired: true,
  },
  {
    uid: '1.2.840.10008.1.2.4.70',
    keyword: 'JPEGLosslessSV1',
    name: 'JPEG Lossless, Non-Hierarchical, First-Order Prediction (Process 14 [Selection Value 1])',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },

  {
    uid: '1.2.840.10008.1.2.4.80',
    keyword: 'JPEGLSLossless',
    name: 'JPEG-LS Lossless Image Compression',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.81',
    keyword: 'JPEGLSNearLossless',
    name: 'JPEG-LS Lossy (Near-Lossless) Image Compression',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },

  {
    uid: '1.2.840.10008.1.2.4.90',
    keyword: 'JPEG2000Lossless',
    name: 'JPEG 2000 Image Compression (Lossless Only)',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.91',
    keyword: 'JPEG2000',
    name: 'JPEG 2000 Image Compression',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.92',
    keyword: 'JPEG2000MCLossless',
    name: 'JPEG 2000 Part 2 Multi-component Image Compression (Lossless Only)',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.93',
    keyword: 'JPEG2000MC',
    name: 'JPEG 2000 Part 2 Multi-component Image Compression',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  // PS3.5 A.6/A.7: the pixels stay on a JPIP server; the data set is plain or deflated.
  { uid: '1.2.840.10008.1.2.4.94', keyword: 'JPIPReferenced', name: 'JPIP Referenced', ...explicitLe, encapsulated: false, retired: false },
  {
    uid: '1.2.840.10008.1.2.4.95',
    keyword: 'JPIPReferencedDeflate',
    name: 'JPIP Referenced Deflate',
    ...explicitLe,
    deflated: true,
    encapsulated: false,
    retired: false,
  },

  // Video (PS3.5 A.4.5 to A.4.8): the whole multi-frame stream is encapsulated.
  {
    uid: '1.2.840.10008.1.2.4.100',
    keyword: 'MPEG2MPML',
    name: 'MPEG2 Main Profile / Main Level',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.100.1',
    keyword: 'MPEG2MPMLF',
    name: 'Fragmentable MPEG2 Main Profile / Main Level',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.101',
    keyword: 'MPEG2MPHL',
    name: 'MPEG2 Main Profile / High Level',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.101.1',
    keyword: 'MPEG2MPHLF',
    name: 'Fragmentable MPEG2 Main Profile / High Level',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.102',
    keyword: 'MPEG4HP41',
    name: 'MPEG-4 AVC/H.264 High Profile / Level 4.1',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.102.1',
    keyword: 'MPEG4HP41F',
    name: 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.1',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.103',
    keyword: 'MPEG4HP41BD',
    name: 'MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.103.1',
    keyword: 'MPEG4HP41BDF',
    name: 'Fragmentable MPEG-4 AVC/H.264 BD-compatible High Profile / Level 4.1',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.104',
    keyword: 'MPEG4HP422D',
    name: 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.104.1',
    keyword: 'MPEG4HP422DF',
    name: 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 2D Video',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.105',
    keyword: 'MPEG4HP423D',
    name: 'MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.105.1',
    keyword: 'MPEG4HP423DF',
    name: 'Fragmentable MPEG-4 AVC/H.264 High Profile / Level 4.2 For 3D Video',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.106',
    keyword: 'MPEG4HP42STEREO',
    name: 'MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.106.1',
    keyword: 'MPEG4HP42STEREOF',
    name: 'Fragmentable MPEG-4 AVC/H.264 Stereo High Profile / Level 4.2',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.107',
    keyword: 'HEVCMP51',
    name: 'HEVC/H.265 Main Profile / Level 5.1',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.108',
    keyword: 'HEVCM10P51',
    name: 'HEVC/H.265 Main 10 Profile / Level 5.1',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },

  {
    uid: '1.2.840.10008.1.2.4.110',
    keyword: 'JPEGXLLossless',
    name: 'JPEG XL Lossless',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.111',
    keyword: 'JPEGXLJPEGRecompression',
    name: 'JPEG XL JPEG Recompression',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  { uid: '1.2.840.10008.1.2.4.112', keyword: 'JPEGXL', name: 'JPEG XL', ...explicitLe, encapsulated: true, retired: false },

  {
    uid: '1.2.840.10008.1.2.4.201',
    keyword: 'HTJ2KLossless',
    name: 'High-Throughput JPEG 2000 Image Compression (Lossless Only)',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.202',
    keyword: 'HTJ2KLosslessRPCL',
    name: 'High-Throughput JPEG 2000 with RPCL Options Image Compression (Lossless Only)',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.203',
    keyword: 'HTJ2K',
    name: 'High-Throughput JPEG 2000 Image Compression',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.204',
    keyword: 'JPIPHTJ2KReferenced',
    name: 'JPIP HTJ2K Referenced',
    ...explicitLe,
    encapsulated: false,
    retired: false,
  },
  {
    uid: '1.2.840.10008.1.2.4.205',
    keyword: 'JPIPHTJ2KReferencedDeflate',
    name: 'JPIP HTJ2K Referenced Deflate',
    ...explicitLe,
    deflated: true,
    encapsulated: false,
    retired: false,
  },

  { uid: '1.2.840.10008.1.2.5', keyword: 'RLELossless', name: 'RLE Lossless', ...explicitLe, encapsulated: true, retired: false },
  // PS3.5 A.4.13: each frame deflated on its own into one fragment; the data set is not deflated.
  {
    uid: '1.2.840.10008.1.2.8.1',
    keyword: 'DeflatedImageFrameCompression',
    name: 'Deflated Image Frame Compression',
    ...explicitLe,
    encapsulated: true,
    retired: false,
  },
];

const byUid = new Map(transferSyntaxes.map((ts) => [ts.uid, ts]));

export function transferSyntaxByUid(uid: string): TransferSyntax | undefined {
  return byUid.get(uid);
}

export function isKnownTransferSyntax(uid: string): boolean {
  return byUid.has(uid);
}
