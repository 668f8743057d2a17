import { describe, expect, it } from 'vitest';
import {
  DEFLATED_EXPLICIT_VR_LE,
  EXPLICIT_VR_BE,
  EXPLICIT_VR_LE,
  IMPLICIT_VR_LE,
  isKnownTransferSyntax,
  transferSyntaxByUid,
  transferSyntaxes,
} from './transfer-syntaxes.ts';

describe('transferSyntaxes table', () => {
  it('has unique UIDs and keywords', () => {
    const uids = transferSyntaxes.map((ts) => ts.uid);
    const keywords = transferSyntaxes.map((ts) => ts.keyword);
    expect(new Set(uids).size).toBe(uids.length);
    expect(new Set(keywords).size).toBe(keywords.length);
  });

  it('holds only well-formed UIDs of at most 64 characters', () => {
    for (const { uid } of transferSyntaxes) {
      expect(uid).toMatch(/^[0-9]+(\.[0-9]+)*$/);
      expect(uid.length).toBeLessThanOrEqual(64);
    }
  });

  it('encodes every data set as Explicit VR Little Endian except the two classic exceptions', () => {
    const notExplicitLe = transferSyntaxes.filter((ts) => !ts.explicitVr || !ts.littleEndian).map((ts) => ts.uid);
    expect(notExplicitLe.sort()).toEqual([IMPLICIT_VR_LE, EXPLICIT_VR_BE].sort());
  });
});

describe('the four native syntaxes', () => {
  it('IMPLICIT_VR_LE is the PS3.5 default', () => {
    expect(transferSyntaxByUid(IMPLICIT_VR_LE)).toEqual({
      uid: '1.2.840.10008.1.2',
      keyword: 'ImplicitVRLittleEndian',
      name: 'Implicit VR Little Endian',
      explicitVr: false,
      littleEndian: true,
      encapsulated: false,
      deflated: false,
      retired: false,
    });
  });

  it('EXPLICIT_VR_LE', () => {
    expect(transferSyntaxByUid(EXPLICIT_VR_LE)).toMatchObject({
      uid: '1.2.840.10008.1.2.1',
      keyword: 'ExplicitVRLittleEndian',
      explicitVr: true,
      littleEndian: true,
      encapsulated: false,
      deflated: false,
    });
  });

  it('EXPLICIT_VR_BE is big endian and retired', () => {
    expect(transferSyntaxByUid(EXPLICIT_VR_BE)).toMatchObject({
      uid: '1.2.840.10008.1.2.2',
      keyword: 'ExplicitVRBigEndian',
      explicitVr: true,
      littleEndian: false,
      retired: true,
    });
  });

  it('DEFLATED_EXPLICIT_VR_LE deflates the data set, not the pixels', () => {
    expect(transferSyntaxByUid(DEFLATED_EXPLICIT_VR_LE)).toMatchObject({
      uid: '1.2.840.10008.1.2.1.99',
      keyword: 'DeflatedExplicitVRLittleEndian',
      deflated: true,
      encapsulated: false,
    });
  });
});

describe('compressed syntaxes', () => {
  it.each([
    ['1.2.840.10008.1.2.4.50', 'JPEGBaseline8Bit', false],
    ['1.2.840.10008.1.2.4.51', 'JPEGExtended12Bit', false],
    ['1.2.840.10008.1.2.4.52', 'JPEGExtended35', true],
    ['1.2.840.10008.1.2.4.57', 'JPEGLossless', false],
    ['1.2.840.10008.1.2.4.66', 'JPEGLosslessHierarchical29', true],
    ['1.2.840.10008.1.2.4.70', 'JPEGLosslessSV1', false],
    ['1.2.840.10008.1.2.4.80', 'JPEGLSLossless', false],
    ['1.2.840.10008.1.2.4.81', 'JPEGLSNearLossless', false],
    ['1.2.840.10008.1.2.4.90', 'JPEG2000Lossless', false],
    ['1.2.840.10008.1.2.4.91', 'JPEG2000', false],
    ['1.2.840.10008.1.2.4.92', 'JPEG2000MCLossless', false],
    ['1.2.840.10008.1.2.4.93', 'JPEG2000MC', false],
    ['1.2.840.10008.1.2.4.100', 'MPEG2MPML', false],
    ['1.2.840.10008.1.2.4.102', 'MPEG4HP41', false],
    ['1.2.840.10008.1.2.4.107', 'HEVCMP51', false],
    ['1.2.840.10008.1.2.4.108', 'HEVCM10P51', false],
    ['1.2.840.10008.1.2.4.201', 'HTJ2KLossless', false],
    ['1.2.840.10008.1.2.4.202', 'HTJ2KLosslessRPCL', false],
    ['1.2.840.10008.1.2.4.203', 'HTJ2K', false],
    ['1.2.840.10008.1.2.5', 'RLELossless', false],
    ['1.2.840.10008.1.2.1.98', 'EncapsulatedUncompressedExplicitVRLittleEndian', false],
    ['1.2.840.10008.1.2.8.1', 'DeflatedImageFrameCompression', false],
  ])('%s (%s) has encapsulated pixel data', (uid, keyword, retired) => {
    expect(transferSyntaxByUid(uid)).toMatchObject({ keyword, encapsulated: true, deflated: false, retired });
  });

  it('JPIP syntaxes reference pixels instead of encapsulating them', () => {
    expect(transferSyntaxByUid('1.2.840.10008.1.2.4.94')).toMatchObject({
      keyword: 'JPIPReferenced',
      encapsulated: false,
      deflated: false,
    });
    expect(transferSyntaxByUid('1.2.840.10008.1.2.4.95')).toMatchObject({
      keyword: 'JPIPReferencedDeflate',
      encapsulated: false,
      deflated: true,
    });
  });
});

describe('isKnownTransferSyntax', () => {
  it('knows every table entry', () => {
    for (const { uid } of transferSyntaxes) expect(isKnownTransferSyntax(uid)).toBe(true);
  });

  it.each([
    ['a prefix of a real UID', '1.2.840.10008.1.2.4'],
    ["GE's private implicit LE with big endian pixels", '1.2.840.113619.5.2'],
    ['the excluded XML encoding', '1.2.840.10008.1.2.6.2'],
    ['a SOP class UID', '1.2.840.10008.5.1.4.1.1.2'],
    ['an empty string', ''],
  ])('rejects %s', (_label, uid) => {
    expect(isKnownTransferSyntax(uid)).toBe(false);
    expect(transferSyntaxByUid(uid)).toBeUndefined();
  });
});
