// Builds dist/: widget.js (src/widget.js with @voicebroker/client from this
// repository's clients/js/src and livekit-client from this directory's
// node_modules, bundled and minified by esbuild into one classic script),
// widget.css, index.html and THIRD_PARTY_LICENSES.txt. `npm run build`.
import * as esbuild from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const here = dirname(fileURLToPath(import.meta.url));
const dist = join(here, 'dist');
const library = resolve(here, '../../clients/js/src/index.ts');

// The widget uses the client library as a web developer would
// (`import ... from '@voicebroker/client'`), built from its sources in this
// repository, and exactly one livekit-client, the widget's own: the
// library's imports of livekit-client resolve here too, never to a second
// copy under clients/js/node_modules.
const useRepositoryLibrary = {
  name: 'voicebroker-client',
  setup(build) {
    build.onResolve({ filter: /^@voicebroker\/client$/ }, () => ({ path: library }));
    build.onResolve({ filter: /^livekit-client$/ }, (args) => {
      if (args.pluginData === 'widget') return undefined;
      return build.resolve('livekit-client', { kind: args.kind, resolveDir: here, pluginData: 'widget' });
    });
  },
};

const banner =
  '/*! voicebroker demo widget and @voicebroker/client (MIT). Bundles livekit-client (Apache-2.0) and the packages ' +
  'it depends on: their licences are in THIRD_PARTY_LICENSES.txt next to this file. */';

mkdirSync(dist, { recursive: true });
const result = await esbuild.build({
  entryPoints: [join(here, 'src/widget.js')],
  outfile: join(dist, 'widget.js'),
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2020',
  legalComments: 'eof',
  banner: { js: banner },
  plugins: [useRepositoryLibrary],
  metafile: true,
  logLevel: 'warning',
});
const livekits = new Set(Object.keys(result.metafile.inputs)
  .filter((p) => /node_modules\/livekit-client\//.test(p))
  .map((p) => p.slice(0, p.indexOf('node_modules/livekit-client/'))));
if (livekits.size !== 1) throw new Error(`the bundle holds ${livekits.size} copies of livekit-client: ${[...livekits].join(', ')}`);
if (!Object.keys(result.metafile.inputs).some((p) => p.endsWith('clients/js/src/index.ts'))) {
  throw new Error('the bundle does not hold @voicebroker/client from clients/js/src');
}

copyFileSync(join(here, 'index.html'), join(dist, 'index.html'));
copyFileSync(join(here, 'src/widget.css'), join(dist, 'widget.css'));
await import('./licenses.mjs');

const js = readFileSync(join(dist, 'widget.js'));
console.log(`dist/widget.js: ${statSync(join(dist, 'widget.js')).size} bytes minified, ${gzipSync(js, { level: 9 }).length} gzipped`);
