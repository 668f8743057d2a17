import fs from 'node:fs';
import PDFDocument from 'pdfkit';

export interface ReportImage {
  /** JPEG (embedded as it is, DCTDecode) or PNG bytes. */
  bytes: Buffer;
  caption: string;
}

export interface ReportLayout {
  pageSize: 'A4' | 'LETTER';
  landscape: boolean;
  columns: number;
  rows: number;
}

export interface ReportContent {
  title: string;
  /** Label → value lines under the title (patient, study, series, institution, printed). */
  identification: [string, string][];
  images: ReportImage[];
  /** Document information (PDF Title, Subject). */
  subject: string;
}

const MARGIN = 36;
const CAPTION_PT = 7;
const GAP = 6;

// The standard PDF fonts (nothing embedded) cover Windows-1252 only; a patient name in Greek or
// Cyrillic needs a TrueType font: DejaVu (Debian fonts-dejavu-core) when the machine has it.
const STANDARD_FONTS = { regular: 'Helvetica', bold: 'Helvetica-Bold' };
const UNICODE_FONTS = {
  regular: '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
  bold: '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
};
// Latin-1 plus the punctuation Windows-1252 adds.
const WIN_ANSI = /^[\x20-\x7e\xa0-\xff\u2018\u2019\u201c\u201d\u2013\u2014\u2026\u2022\u20ac]*$/;

function fontsFor(content: ReportContent): typeof STANDARD_FONTS {
  const texts = [content.title, ...content.identification.flat(), ...content.images.map((i) => i.caption)];
  if (texts.every((t) => WIN_ANSI.test(t))) return STANDARD_FONTS;
  return fs.existsSync(UNICODE_FONTS.regular) && fs.existsSync(UNICODE_FONTS.bold) ? UNICODE_FONTS : STANDARD_FONTS;
}

/**
 * A report page (or pages): the title and identification block on each page, the images in a
 * grid of `columns` × `rows` cells, each fitted to its cell with its caption, and "page n of m".
 */
export async function buildReportPdf(content: ReportContent, layout: ReportLayout): Promise<Buffer> {
  const doc = new PDFDocument({
    size: layout.pageSize,
    layout: layout.landscape ? 'landscape' : 'portrait',
    margin: MARGIN,
    bufferPages: true,
    autoFirstPage: false,
    info: { Title: content.title, Subject: content.subject, Creator: 'dicomflow', Producer: 'dicomflow (pdfkit)' },
  });
  const fonts = fontsFor(content);
  const chunks: Buffer[] = [];
  doc.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise<void>((resolve, reject) => {
    doc.on('end', resolve);
    doc.on('error', reject);
  });

  const perPage = layout.columns * layout.rows;
  const pages = Math.max(1, Math.ceil(content.images.length / perPage));
  for (let page = 0; page < pages; page++) {
    doc.addPage();
    const top = header(doc, content, fonts);
    const width = doc.page.width - 2 * MARGIN;
    const bottom = doc.page.height - MARGIN - 12;
    const cellW = (width - (layout.columns - 1) * GAP) / layout.columns;
    const cellH = (bottom - top - (layout.rows - 1) * GAP) / layout.rows;
    content.images.slice(page * perPage, (page + 1) * perPage).forEach((image, i) => {
      const x = MARGIN + (i % layout.columns) * (cellW + GAP);
      const y = top + Math.floor(i / layout.columns) * (cellH + GAP);
      const imageH = cellH - CAPTION_PT - 4;
      doc.image(image.bytes, x, y, { fit: [cellW, imageH], align: 'center', valign: 'center' });
      doc
        .font(fonts.regular)
        .fontSize(CAPTION_PT)
        .fillColor('black')
        .text(image.caption, x, y + imageH + 2, { width: cellW, align: 'center', lineBreak: false, ellipsis: true });
    });
    if (content.images.length === 0) doc.font(fonts.regular).fontSize(10).text('No images.', MARGIN, top);
  }
  const range = doc.bufferedPageRange();
  for (let i = 0; i < range.count; i++) {
    doc.switchToPage(range.start + i);
    // Text below the bottom margin would make pdfkit start a new page.
    doc.page.margins.bottom = 0;
    doc
      .font(fonts.regular)
      .fontSize(7)
      .fillColor('gray')
      .text(`page ${i + 1} of ${range.count}`, MARGIN, doc.page.height - MARGIN - 8, {
        width: doc.page.width - 2 * MARGIN,
        align: 'right',
        lineBreak: false,
      });
  }
  doc.end();
  await ended;
  return Buffer.concat(chunks);
}

/** Draws the title and the identification block; returns where the image grid starts. */
function header(doc: PDFKit.PDFDocument, content: ReportContent, fonts: typeof STANDARD_FONTS): number {
  const width = doc.page.width - 2 * MARGIN;
  doc.font(fonts.bold).fontSize(15).fillColor('black').text(content.title, MARGIN, MARGIN, { width, lineBreak: false, ellipsis: true });
  let y = MARGIN + 22;
  const labelW = 70;
  for (const [label, value] of content.identification) {
    doc.font(fonts.bold).fontSize(9).text(label, MARGIN, y, { width: labelW, lineBreak: false });
    doc
      .font(fonts.regular)
      .fontSize(9)
      .text(value, MARGIN + labelW, y, { width: width - labelW, lineBreak: false, ellipsis: true });
    y += 12;
  }
  y += 4;
  doc
    .moveTo(MARGIN, y)
    .lineTo(MARGIN + width, y)
    .lineWidth(0.5)
    .strokeColor('gray')
    .stroke();
  return y + 8;
}
