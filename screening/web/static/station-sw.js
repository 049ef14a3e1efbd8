// Serves the sampling-station page and its files from the cache when the network or
// the service is down, so a clerk can keep scanning; API calls always go to the network.
const CACHE = "station-v2";
const FILES = [
  "/station", "/static/pages.css", "/static/station.css", "/static/station-rules.js",
  "/static/station-store.js", "/static/station-voice.js", "/static/station-box.js", "/static/station-refused.js",
  "/static/station-walkin.js", "/static/station.js",
];
self.addEventListener("install", (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});
self.addEventListener("activate", (e) => {
  // drop the caches of earlier versions of the page, then take over open pages
  e.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith("station-") && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});
self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || !FILES.includes(url.pathname)) { return; }
  e.respondWith(
    fetch(e.request).then((r) => {
      const copy = r.clone();
      caches.open(CACHE).then((c) => c.put(e.request, copy));
      return r;
    }).catch(() => caches.match(e.request, { ignoreSearch: true }))
  );
});
