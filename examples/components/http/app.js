// An HTTP component (wasi:http/incoming-handler) for componentize-js:
//   GET  /anything      → 200 "hello from a wasm component: /anything"
//   POST /echo          → 200 with the request body
//   GET  /id/N          → 200 "id N" (for checking many concurrent bodies)
//   GET  /slow?ms=N     → 200 "slept N" after N ms (to have a request in flight)
//   GET  /error         → the handler throws: the guest fails the request
addEventListener('fetch', (event) => event.respondWith(handle(event.request)));

async function handle(request) {
  const url = new URL(request.url);
  const text = (body, status = 200) => new Response(body, { status, headers: { 'content-type': 'text/plain' } });
  if (url.pathname === '/echo') return text(await request.text());
  if (url.pathname.startsWith('/id/')) return text(`id ${url.pathname.slice(4)}\n`);
  if (url.pathname === '/slow') {
    const ms = Number(url.searchParams.get('ms') ?? '1000');
    console.log(`slow request started (${ms} ms)`);
    await new Promise((resolve) => setTimeout(resolve, ms));
    return text(`slept ${ms}\n`);
  }
  if (url.pathname === '/error') throw new Error('the guest failed this request on purpose');
  return text(`hello from a wasm component: ${url.pathname}\n`);
}
