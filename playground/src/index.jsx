// The titanbay GraphQL playground: GraphiQL with the explorer plugin. Everything it needs is
// bundled by build.mjs and served by the titanbay server itself; it reads its settings from the
// JSON block the server writes into the page (#playground-config) and runs no inline script.
import './csp-nonce.js';
import './monaco-workers.js';

import { createRoot } from 'react-dom/client';
import { GraphiQL } from 'graphiql';
import { createGraphiQLFetcher } from '@graphiql/toolkit';
import { explorerPlugin } from '@graphiql/plugin-explorer';

import 'graphiql/style.css';
import '@graphiql/plugin-explorer/style.css';
import './playground.css';

function readConfig() {
  const element = document.getElementById('playground-config');
  const config = element ? JSON.parse(element.textContent || '{}') : {};
  return {
    endpoint: config.endpoint || '/graphql',
    // A WebSocket URL (graphql-transport-ws) once the server offers subscriptions.
    subscriptionEndpoint: config.subscriptionEndpoint || undefined,
    defaultQuery: config.defaultQuery ?? '',
    defaultHeaders: config.defaultHeaders ?? '',
    openHeaders: Boolean(config.openHeaders),
  };
}

const config = readConfig();
const fetcher = createGraphiQLFetcher({
  url: new URL(config.endpoint, window.location.href).toString(),
  subscriptionUrl: config.subscriptionEndpoint
    ? new URL(config.subscriptionEndpoint, window.location.href).toString().replace(/^http/, 'ws')
    : undefined,
});
const explorer = explorerPlugin();

function Playground() {
  return (
    <GraphiQL
      fetcher={fetcher}
      plugins={[explorer]}
      visiblePlugin={explorer}
      defaultQuery={config.defaultQuery}
      defaultHeaders={config.defaultHeaders}
      isHeadersEditorEnabled
      defaultEditorToolsVisibility={config.openHeaders ? 'headers' : undefined}
    />
  );
}

const root = document.getElementById('graphiql');
root.textContent = '';
createRoot(root).render(<Playground />);
