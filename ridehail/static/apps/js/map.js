// The Leaflet map both apps draw on (Leaflet is the global `L`, vendored from npm). No tile
// server: the base layer is the neighbourhood outlines the server ships, so the apps work
// offline from any third party and under a Content-Security-Policy of 'self' only.
/* global L */

export const CITY_CENTRE = { lat: 40.758, lng: -73.9855 }; // Times Square, Midtown Manhattan

export function makeMap(elementId, centre = CITY_CENTRE) {
  const map = L.map(elementId, {
    center: [centre.lat, centre.lng], zoom: 15, zoomControl: true, attributionControl: true,
    keyboard: true,
  });
  map.attributionControl.setPrefix("Leaflet");
  map.attributionControl.addAttribution("neighbourhoods: NYC City Planning");
  fetch("/app/base.geojson").then((r) => (r.ok ? r.json() : null)).then((data) => {
    if (!data) return;
    L.geoJSON(data, {
      interactive: false,
      style: { color: "#7a8a99", weight: 1, fillColor: "#eef2f5", fillOpacity: 1 },
    }).addTo(map).bringToBack();
  }).catch(() => {});
  return map;
}

// A labelled point marker (an SVG circle: no image, so nothing for the CSP to allow).
export function dot(latlng, cls, title, radius = 8) {
  return L.circleMarker([latlng.lat, latlng.lng], {
    radius, className: cls, weight: 2, fillOpacity: 0.9,
  }).bindTooltip(title);
}

// Move a marker, or create it on the map when it does not exist yet.
export function place(map, marker, latlng, make) {
  if (!latlng) {
    if (marker) marker.remove();
    return null;
  }
  if (marker) {
    marker.setLatLng([latlng.lat, latlng.lng]);
    return marker;
  }
  return make(latlng).addTo(map);
}

// Show every given point (nulls skipped), not closer than a street view.
export function fit(map, points) {
  const pts = points.filter(Boolean).map((p) => [p.lat, p.lng]);
  if (pts.length === 0) return;
  if (pts.length === 1) {
    map.setView(pts[0], Math.max(map.getZoom(), 15), { animate: false });
    return;
  }
  map.fitBounds(L.latLngBounds(pts), { padding: [30, 30], maxZoom: 16, animate: false });
}

// Great-circle distance in metres (for the simulated drive's steps).
export function metres(a, b) {
  const r = 6371008.8;
  const toRad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * toRad;
  const dLng = (b.lng - a.lng) * toRad;
  const h = Math.sin(dLat / 2) ** 2 +
    Math.cos(a.lat * toRad) * Math.cos(b.lat * toRad) * Math.sin(dLng / 2) ** 2;
  return 2 * r * Math.asin(Math.min(1, Math.sqrt(h)));
}

// `step` metres from `a` towards `b` (b itself when it is nearer).
export function towards(a, b, step) {
  const d = metres(a, b);
  if (d <= step || d === 0) return { lat: b.lat, lng: b.lng };
  const f = step / d;
  return { lat: a.lat + (b.lat - a.lat) * f, lng: a.lng + (b.lng - a.lng) * f };
}
