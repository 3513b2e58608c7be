// WGS-84 -> GCJ-02, for drawing the ledger's WGS-84 positions on a GCJ-02 basemap only.
// The same published formula as vision/geo/gcj02.py (tests/web compares the two in the browser).
const A = 6378245.0; // Krasovsky 1940 semi-major axis
const EE = 0.00669342162296594323; // Krasovsky 1940 first eccentricity squared
const { sin, sqrt, abs, cos, PI } = Math;

export function outOfChina(lon, lat) {
  return !(lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271);
}

function offsetLat(x, y) {
  let r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt(abs(x));
  r += ((20.0 * sin(6.0 * x * PI) + 20.0 * sin(2.0 * x * PI)) * 2.0) / 3.0;
  r += ((20.0 * sin(y * PI) + 40.0 * sin((y / 3.0) * PI)) * 2.0) / 3.0;
  r += ((160.0 * sin((y / 12.0) * PI) + 320.0 * sin((y * PI) / 30.0)) * 2.0) / 3.0;
  return r;
}

function offsetLon(x, y) {
  let r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt(abs(x));
  r += ((20.0 * sin(6.0 * x * PI) + 20.0 * sin(2.0 * x * PI)) * 2.0) / 3.0;
  r += ((20.0 * sin(x * PI) + 40.0 * sin((x / 3.0) * PI)) * 2.0) / 3.0;
  r += ((150.0 * sin((x / 12.0) * PI) + 300.0 * sin((x / 30.0) * PI)) * 2.0) / 3.0;
  return r;
}

export function wgs84ToGcj02(lon, lat) {
  if (outOfChina(lon, lat)) return [lon, lat];
  let dLat = offsetLat(lon - 105.0, lat - 35.0);
  let dLon = offsetLon(lon - 105.0, lat - 35.0);
  const radLat = (lat / 180.0) * PI;
  const magic = 1 - EE * sin(radLat) ** 2;
  const sqrtMagic = sqrt(magic);
  dLat = (dLat * 180.0) / (((A * (1 - EE)) / (magic * sqrtMagic)) * PI);
  dLon = (dLon * 180.0) / ((A / sqrtMagic) * cos(radLat) * PI);
  return [lon + dLon, lat + dLat];
}
