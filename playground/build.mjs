// Bundles the playground (GraphiQL, its explorer plugin, React, Monaco and its workers, the
// stylesheets and the fonts they embed) into one folder of static, content-hashed files that the
// titanbay server serves itself, and writes beside them:
//
// - THIRD_PARTY_LICENSES.txt: the licence of every package (and font) that ended up in a file;
// - MANIFEST.json: each served file's SHA-256 and size, and the version of every bundled package;
// - assets.rs: the list of served files for the server (`include!`d by src/http/playground.rs).
//
// Usage: node build.mjs [OUTDIR]   (default: dist). Run it through update.sh.

import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);
const outdir = path.resolve(here, process.argv[2] ?? 'dist');
const work = path.join(here, '.build');

/** Files served by the server that are not content-hashed (so not cached for long). */
const LICENSES_FILE = 'THIRD_PARTY_LICENSES.txt';
/** Written beside the served files, not served. */
const NOT_SERVED = new Set(['MANIFEST.json', 'assets.rs']);

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

fs.rmSync(outdir, { recursive: true, force: true });
fs.mkdirSync(outdir, { recursive: true });
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });

// ---------------------------------------------------------------------------------------------
// Stylesheets embed fonts and images as data: URLs, which a Content-Security-Policy of 'self'
// refuses. They are written out as files (named by content) and the stylesheet points at them,
// so esbuild emits them as content-hashed assets.

/** Extracted file (absolute path) → the package whose stylesheet embedded it. */
const extracted = new Map();
const EXTENSIONS = {
  'font/woff2': 'woff2',
  'font/woff': 'woff',
  'font/ttf': 'ttf',
  'font/otf': 'otf',
  'image/png': 'png',
  'image/svg+xml': 'svg',
  'image/gif': 'gif',
};

const inlineDataUrls = {
  name: 'inline-data-urls',
  setup(build) {
    build.onLoad({ filter: /\.css$/ }, async (args) => {
      const css = await fs.promises.readFile(args.path, 'utf8');
      const owner = packageOf(args.path);
      const contents = css.replace(
        /url\(\s*(['"]?)data:([a-z0-9.+/-]+)((?:;[a-z0-9=-]+)*?)(;base64)?,([^'")]*)\1\s*\)/gi,
        (_match, _quote, mime, _params, base64, payload) => {
          const ext = EXTENSIONS[mime.toLowerCase()];
          if (!ext) {
            throw new Error(`${args.path}: a data: URL of type ${mime} has no file extension here`);
          }
          const bytes = base64 ? Buffer.from(payload, 'base64') : Buffer.from(decodeURIComponent(payload));
          const kind = mime.startsWith('font/') ? 'font' : 'image';
          const dir = path.join(work, 'inline', sha256(bytes).slice(0, 16));
          const file = path.join(dir, `${kind}.${ext}`);
          fs.mkdirSync(dir, { recursive: true });
          fs.writeFileSync(file, bytes);
          extracted.set(file, owner);
          return `url(${JSON.stringify(file)})`;
        },
      );
      return { contents, loader: 'css', resolveDir: path.dirname(args.path) };
    });
  },
};

// ---------------------------------------------------------------------------------------------
// The bundles.

const common = {
  absWorkingDir: here,
  bundle: true,
  minify: true,
  platform: 'browser',
  target: ['es2022'],
  charset: 'utf8',
  legalComments: 'eof',
  sourcemap: false,
  metafile: true,
  write: true,
  outdir,
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  define: { 'process.env.NODE_ENV': '"production"' },
  logLevel: 'warning',
};

// Monaco's workers first: the page script needs their (content-hashed) names.
// The labels are the ones Monaco passes to MonacoEnvironment.getWorker.
const workerSources = {
  editor: require.resolve('monaco-editor/esm/vs/editor/editor.worker.js'),
  json: require.resolve('monaco-editor/esm/vs/language/json/json.worker.js'),
  graphql: require.resolve('monaco-graphql/esm/graphql.worker.js'),
};
const workers = await esbuild.build({
  ...common,
  format: 'iife',
  entryPoints: Object.fromEntries(Object.entries(workerSources).map(([label, file]) => [`${label}.worker`, file])),
});
const workerFiles = {};
for (const [file, output] of Object.entries(workers.metafile.outputs)) {
  const source = output.entryPoint && path.resolve(here, output.entryPoint);
  const label = Object.keys(workerSources).find((l) => workerSources[l] === source);
  if (label) workerFiles[label] = path.basename(file);
}
for (const label of Object.keys(workerSources)) {
  if (!workerFiles[label]) throw new Error(`no bundle for Monaco's ${label} worker`);
}

const page = await esbuild.build({
  ...common,
  format: 'esm',
  jsx: 'automatic',
  entryPoints: { playground: path.join(here, 'src/index.jsx') },
  loader: { '.woff2': 'file', '.woff': 'file', '.ttf': 'file', '.otf': 'file', '.png': 'file', '.svg': 'file', '.gif': 'file' },
  define: { ...common.define, __PLAYGROUND_WORKERS__: JSON.stringify(workerFiles) },
  plugins: [inlineDataUrls],
});

let entryScript;
let entryStyle;
for (const [file, output] of Object.entries(page.metafile.outputs)) {
  if (output.entryPoint && file.endsWith('.js')) {
    entryScript = path.basename(file);
    entryStyle = output.cssBundle && path.basename(output.cssBundle);
  }
}
if (!entryScript || !entryStyle) throw new Error('the page bundle has no script or no stylesheet');

// The page's icon (the playground's own), named by its content like the bundles.
const faviconBytes = fs.readFileSync(path.join(here, 'src/favicon.svg'));
const favicon = `favicon-${sha256(faviconBytes).slice(0, 8).toUpperCase()}.svg`;
fs.writeFileSync(path.join(outdir, favicon), faviconBytes);

// ---------------------------------------------------------------------------------------------
// Licences: every package with a file in any output, and the fonts.

function packageOf(file) {
  const abs = path.resolve(here, file);
  const marker = `${path.sep}node_modules${path.sep}`;
  const at = abs.lastIndexOf(marker);
  if (at < 0) return extracted.get(abs) ?? null;
  const rest = abs.slice(at + marker.length).split(path.sep);
  const name = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  return path.join(abs.slice(0, at + marker.length), name);
}

const packages = new Map(); // dir → package.json
for (const result of [workers, page]) {
  for (const output of Object.values(result.metafile.outputs)) {
    for (const input of Object.keys(output.inputs)) {
      const dir = packageOf(input);
      if (dir && !packages.has(dir)) {
        packages.set(dir, JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')));
      }
    }
  }
}
// One entry per name@version (npm may install a package more than once).
const byName = [];
for (const [dir, pkg] of [...packages.entries()].sort(([, a], [, b]) => `${a.name}@${a.version}`.localeCompare(`${b.name}@${b.version}`))) {
  if (!byName.some((p) => p.pkg.name === pkg.name && p.pkg.version === pkg.version)) byName.push({ dir, pkg });
}

const licenseText = (dir) => {
  const files = fs
    .readdirSync(dir)
    .filter((f) => /^(licen[cs]e|copying|notice|thirdpartynotices)/i.test(f))
    .sort();
  return files.map((f) => ({ file: f, text: fs.readFileSync(path.join(dir, f), 'utf8').trim() }));
};
const licenseOf = (pkg) =>
  typeof pkg.license === 'string' ? pkg.license : pkg.license?.type ?? (pkg.licenses ?? []).map((l) => l.type).join(' OR ');
const repositoryOf = (pkg) => {
  const url = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
  return url?.replace(/^git\+/, '').replace(/\.git$/, '').replace(/\/$/, '') ?? null;
};
// Packages that ship no licence file take it from a bundled package of the same repository
// (a monorepo's packages share its licence). react-compiler-runtime names facebook/react, the
// repository's former name, and react names react/react.
const SAME_REPOSITORY = { 'react-compiler-runtime': 'react' };
const borrowedLicense = (pkg) => {
  const donor = byName.find(
    ({ dir, pkg: other }) =>
      other !== pkg &&
      licenseOf(other) === licenseOf(pkg) &&
      (other.name === SAME_REPOSITORY[pkg.name] || (repositoryOf(other) && repositoryOf(other) === repositoryOf(pkg))) &&
      licenseText(dir).length > 0,
  );
  return donor ? { donor: donor.pkg, texts: licenseText(donor.dir) } : null;
};

// The fonts' own copyright and licence records (the OpenType `name` table: 0 copyright,
// 1 family, 13 licence, 14 licence URL), read from each font file.
function fontNames(bytes) {
  let sfnt;
  const tag = bytes.toString('latin1', 0, 4);
  const tables = new Map();
  if (tag === 'wOF2') {
    const numTables = bytes.readUInt16BE(12);
    const totalCompressed = bytes.readUInt32BE(20);
    let at = 48;
    const base128 = () => {
      let value = 0;
      for (let i = 0; i < 5; i += 1) {
        const byte = bytes[at++];
        value = value * 128 + (byte & 0x7f);
        if (!(byte & 0x80)) return value;
      }
      throw new Error('bad UIntBase128');
    };
    const known = ['cmap', 'head', 'hhea', 'hmtx', 'maxp', 'name', 'OS/2', 'post'];
    const directory = [];
    for (let i = 0; i < numTables; i += 1) {
      const flags = bytes[at++];
      let name = known[flags & 0x3f] ?? `#${flags & 0x3f}`;
      if ((flags & 0x3f) === 63) {
        name = bytes.toString('latin1', at, at + 4);
        at += 4;
      }
      const version = flags >> 6;
      const length = base128();
      const index = flags & 0x3f;
      // glyf (10) and loca (11) are transformed unless version 3; any other table when not 0.
      const transformed = index === 10 || index === 11 ? version !== 3 : version !== 0;
      const stored = transformed ? base128() : length;
      directory.push({ name, stored });
    }
    const stream = zlib.brotliDecompressSync(bytes.subarray(at, at + totalCompressed));
    let offset = 0;
    for (const { name, stored } of directory) {
      tables.set(name, stream.subarray(offset, offset + stored));
      offset += stored;
    }
  } else if (tag === 'wOFF') {
    const numTables = bytes.readUInt16BE(12);
    for (let i = 0; i < numTables; i += 1) {
      const at = 44 + i * 20;
      const name = bytes.toString('latin1', at, at + 4);
      const offset = bytes.readUInt32BE(at + 4);
      const compressed = bytes.readUInt32BE(at + 8);
      const length = bytes.readUInt32BE(at + 12);
      const data = bytes.subarray(offset, offset + compressed);
      tables.set(name, compressed < length ? zlib.inflateSync(data) : data);
    }
  } else {
    sfnt = bytes;
    const numTables = sfnt.readUInt16BE(4);
    for (let i = 0; i < numTables; i += 1) {
      const at = 12 + i * 16;
      const name = sfnt.toString('latin1', at, at + 4);
      const offset = sfnt.readUInt32BE(at + 8);
      const length = sfnt.readUInt32BE(at + 12);
      tables.set(name, sfnt.subarray(offset, offset + length));
    }
  }
  const table = tables.get('name');
  const names = {};
  if (!table) return names;
  const count = table.readUInt16BE(2);
  const strings = table.readUInt16BE(4);
  for (let i = 0; i < count; i += 1) {
    const at = 6 + i * 12;
    const platform = table.readUInt16BE(at);
    const id = table.readUInt16BE(at + 6);
    const length = table.readUInt16BE(at + 8);
    const offset = strings + table.readUInt16BE(at + 10);
    const raw = table.subarray(offset, offset + length);
    let text;
    if (platform === 3 || platform === 0) {
      text = '';
      for (let j = 0; j + 1 < raw.length; j += 2) text += String.fromCharCode(raw.readUInt16BE(j));
    } else if (platform === 1) {
      text = raw.toString('latin1');
    } else {
      continue;
    }
    if (!(id in names) || platform === 3) names[id] = text.trim();
  }
  return names;
}

// Fonts whose files carry no copyright or licence record.
const FONT_NOTES = {
  'Fira Code': 'Licence: SIL Open Font License 1.1 (quoted below).',
  codicon:
    "Monaco's icon font, from Microsoft's vscode-codicons (https://github.com/microsoft/vscode-codicons):\n" +
    'the icons are licensed under the Creative Commons Attribution 4.0 International licence (CC BY 4.0,\n' +
    'https://creativecommons.org/licenses/by/4.0/), the code under MIT. Shipped in monaco-editor, whose licence is above.',
};
const fonts = new Map(); // "family\0copyright\0licence" → { names, files, owner }
for (const [file, output] of Object.entries(page.metafile.outputs)) {
  if (!/\.(woff2?|ttf|otf)$/.test(file)) continue;
  const source = Object.keys(output.inputs)[0];
  const owner = extracted.get(path.resolve(here, source)) ?? packageOf(source);
  const names = fontNames(fs.readFileSync(path.resolve(here, file)));
  const key = [names[1], names[0], names[13], names[14]].join('\0');
  if (!fonts.has(key)) fonts.set(key, { names, files: [], owner });
  fonts.get(key).files.push(path.basename(file));
}

const esbuildPkg = JSON.parse(fs.readFileSync(path.join(here, 'node_modules/esbuild/package.json'), 'utf8'));
let licenses = `Third-party software in the titanbay GraphQL playground
=========================================================

The files served under /graphql/playground/ were bundled with esbuild ${esbuildPkg.version} from the
npm packages below (exact versions from playground/package-lock.json); each one's licence
follows, as the package ships it. esbuild adds a few lines of its own runtime helpers (MIT
licence, Copyright (c) 2020 Evan Wallace).

Packages: ${byName.length}
${byName.map(({ pkg }) => `  ${pkg.name}@${pkg.version} (${licenseOf(pkg)})`).join('\n')}
`;
for (const { dir, pkg } of byName) {
  licenses += `\n\n${'='.repeat(96)}\n${pkg.name}@${pkg.version}\nLicence: ${licenseOf(pkg)}\n`;
  if (pkg.homepage || pkg.repository) {
    const repo = typeof pkg.repository === 'string' ? pkg.repository : pkg.repository?.url;
    licenses += `Source: ${pkg.homepage ?? repo}\n`;
  }
  let texts = licenseText(dir);
  if (texts.length === 0) {
    const borrowed = borrowedLicense(pkg);
    if (borrowed) {
      licenses += `\n(The package ships no licence file; this is the licence file of ${borrowed.donor.name}@${borrowed.donor.version}, from the same repository, ${repositoryOf(pkg) ?? repositoryOf(borrowed.donor)}.)\n`;
      texts = borrowed.texts;
    } else {
      const author = typeof pkg.author === 'string' ? pkg.author : pkg.author?.name;
      licenses += `\n(The package ships no licence file; its package.json names the ${licenseOf(pkg)} licence${author ? `, author ${author}` : ''}.)\n`;
    }
  }
  for (const { file, text } of texts) {
    licenses += `${'-'.repeat(96)}\n${file}:\n\n${text}\n`;
  }
}
licenses += `\n\n${'='.repeat(96)}\nFonts\n\nThe fonts below came embedded (as data: URLs) in the stylesheets of the packages named; they
are served unchanged as separate files. Each font file carries its copyright and licence in its
own metadata, quoted here.\n`;
for (const { names, files, owner } of [...fonts.values()].sort((a, b) => (a.names[1] ?? '').localeCompare(b.names[1] ?? ''))) {
  const ownerPkg = owner ? packages.get(owner) ?? JSON.parse(fs.readFileSync(path.join(owner, 'package.json'), 'utf8')) : null;
  licenses += `${'-'.repeat(96)}\n${names[1] ?? '(unnamed font)'}, from ${ownerPkg ? `${ownerPkg.name}@${ownerPkg.version}` : 'the playground'} (${files.length} file${files.length === 1 ? '' : 's'})\n`;
  if (names[0]) licenses += `Copyright: ${names[0]}\n`;
  if (names[13]) licenses += `Licence: ${names[13]}\n`;
  if (names[14]) licenses += `Licence URL: ${names[14]}\n`;
  const family = Object.keys(FONT_NOTES).find((f) => names[1]?.startsWith(f));
  if (family) licenses += `${FONT_NOTES[family]}\n`;
}
// The font metadata names the licences; their texts: Apache 2.0 is react-aria's licence above,
// and the SIL Open Font License comes from the Fira Code package of the fontsource project
// (a devDependency for this only: its copyright line is the one in the fonts).
licenses += `${'-'.repeat(96)}\nThe Apache License 2.0 named by the Roboto fonts is quoted in full above (react-aria's licence).
The licence of the Fira Code fonts, as the fontsource project ships it with them:\n\n${fs
  .readFileSync(path.join(here, 'node_modules/@fontsource/fira-code/LICENSE'), 'utf8')
  .trim()}\n`;
fs.writeFileSync(path.join(outdir, LICENSES_FILE), licenses);

// ---------------------------------------------------------------------------------------------
// The manifest and the server's file list.

const served = fs
  .readdirSync(outdir)
  .filter((f) => !NOT_SERVED.has(f))
  .sort();
const direct = JSON.parse(fs.readFileSync(path.join(here, 'package.json'), 'utf8'));
const manifest = {
  comment: 'Written by playground/update.sh (build.mjs); the server serves exactly these files under /graphql/playground/.',
  entry: { script: entryScript, style: entryStyle, favicon, workers: workerFiles },
  dependencies: { ...direct.dependencies, ...direct.devDependencies },
  bundled: Object.fromEntries(byName.map(({ pkg }) => [pkg.name, pkg.version])),
  files: Object.fromEntries(
    served.map((f) => {
      const bytes = fs.readFileSync(path.join(outdir, f));
      return [f, { sha256: sha256(bytes), bytes: bytes.length }];
    }),
  ),
};
fs.writeFileSync(path.join(outdir, 'MANIFEST.json'), `${JSON.stringify(manifest, null, 2)}\n`);

const rust = `// @generated by playground/build.mjs (run playground/update.sh); do not edit.
// The files served under /graphql/playground/, as listed in MANIFEST.json beside this file.

/// The page's script (an ES module).
pub(super) const ENTRY_SCRIPT: &str = ${JSON.stringify(entryScript)};
/// The page's stylesheet.
pub(super) const ENTRY_STYLE: &str = ${JSON.stringify(entryStyle)};
/// The page's icon.
pub(super) const FAVICON: &str = ${JSON.stringify(favicon)};
/// Every served file: its name and bytes.
pub(super) static FILES: &[(&str, &[u8])] = &[
${served.map((f) => `    (${JSON.stringify(f)}, include_bytes!(${JSON.stringify(f)})),`).join('\n')}
];
`;
fs.writeFileSync(path.join(outdir, 'assets.rs'), rust);
fs.rmSync(work, { recursive: true, force: true });

const total = served.reduce((sum, f) => sum + manifest.files[f].bytes, 0);
console.log(
  `playground: ${served.length} files, ${(total / 1024 / 1024).toFixed(2)} MiB, ${byName.length} packages -> ${path.relative(process.cwd(), outdir) || '.'}`,
);
