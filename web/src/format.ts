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

export const seconds = (from?: string, to?: string): string =>
  from && to ? `${((Date.parse(to) - Date.parse(from)) / 1000).toFixed(2)} s` : '';

/** DICOM PN: family^given → "family, given". */
export const personName = (pn?: string): string => (pn ? pn.split('^').filter(Boolean).join(', ') : '');

/** DICOM DA: 20240131 → 2024-01-31. */
export const dicomDate = (da?: string): string =>
  da && /^\d{8}$/.test(da) ? `${da.slice(0, 4)}-${da.slice(4, 6)}-${da.slice(6)}` : (da ?? '');

/** An age in seconds: "4 s", "3 min", "2 h", "5 d". */
export const age = (s: number): string => {
  s = Math.max(0, Math.round(s));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} d`;
};
