// Monaco's web workers, served from the same origin as this script. Imported before anything
// that creates an editor. The build (build.mjs) replaces __PLAYGROUND_WORKERS__ with the
// content-hashed file names of the three worker bundles.
/* global __PLAYGROUND_WORKERS__ */
const workers = __PLAYGROUND_WORKERS__;

globalThis.MonacoEnvironment = {
  getWorker(_workerId, label) {
    const file = workers[label] ?? workers.editor;
    return new Worker(new URL(`./${file}`, import.meta.url), { name: label });
  },
};
