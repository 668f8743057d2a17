export const bytes = (n: number): string => {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
};

export const time = (iso?: string): string => (iso ? new Date(iso).toLocaleTimeString() : '');

export const seconds = (from?: string, to?: string): string => (from && to ? `${((Date.parse(to) - Date.parse(from)) / 1000).toFixed(2)} s` : '');

/** DICOM PN: family^given → "family, given". */
export const personName = (pn?: string): string => (pn ? pn.split('^').filter(Boolean).join(', ') : '');

/** DICOM DA: 20240131 → 2024-01-31. */
export const dicomDate = (da?: string): string => (da && /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : (da ?? ''));
