// PostGraphile 5 for bench/run.sh: the amber preset (PostGraphile's recommended preset) with its
// defaults, against the benchmark's database, as one would run it in production: no GraphiQL,
// no explain, no watch mode, no subscriptions. bench/run.sh copies this file beside the
// installed packages (bench/out/postgraphile5) and runs `postgraphile -C graphile.config.mjs`
// with NODE_ENV=production, GRAPHILE_ENV=production and the variables below.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";

const connectionString = process.env.PGL5_DATABASE_URL;
if (!connectionString) throw new Error("PGL5_DATABASE_URL is not set");

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [
    makePgService({
      connectionString,
      schemas: ["public"],
      // No LISTEN connection for subscriptions or watch mode; the pool is pg's default (10
      // connections), as PostGraphile 4's.
      pubsub: false,
    }),
  ],
  grafserv: {
    host: "127.0.0.1",
    port: Number(process.env.PGL5_PORT ?? 15001),
    graphqlPath: "/graphql",
    graphiql: false,
    graphiqlOnGraphQLGET: false,
    watch: false,
    websockets: false,
  },
  grafast: {
    explain: false,
  },
};

export default preset;
