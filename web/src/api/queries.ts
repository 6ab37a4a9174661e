// GraphQL documents, kept in one place so a schema change is a one-file edit.

const ENDPOINT = 'ip port name';

/** What the stream list needs per entry; bodies are fetched on select. */
export const ENTRY_FIELDS = `
  id timestamp elapsedTime protocol flag transport flowId
  src { ${ENDPOINT} } dst { ${ENDPOINT} }
  complete summary status requestSize responseSize
  request { timestamp fields summary }
  response { timestamp fields summary }
  vars
`;

const BODY = 'size captured truncated decodedFrom text base64';

export const ENTRIES_SUBSCRIPTION = `subscription Entries($filter: String) {
  entries(filter: $filter) { ${ENTRY_FIELDS} }
}`;

export const ENTRIES_QUERY = `query Entries($filter: String, $from: String, $to: String, $after: ID, $limit: Int!, $order: Order!) {
  entries(filter: $filter, from: $from, to: $to, after: $after, limit: $limit, order: $order) {
    entries { ${ENTRY_FIELDS} }
    next
    scanned
  }
}`;

export const ENTRY_QUERY = `query Entry($id: ID!) {
  entry(id: $id) {
    ${ENTRY_FIELDS}
    request { timestamp fields summary body { ${BODY} } }
    response { timestamp fields summary body { ${BODY} } }
  }
}`;

const STATS_FIELDS = `
  uptimeSeconds packets bytes entries
  drops { name value }
  sources { name packets bytes kernelDrops interfaceDrops }
  shards { shard packets bytes flows entries pluginErrors drops { name value } }
  store { bytes limitBytes entries evictedEntries oldestId newestId }
  protocols { name value }
`;

export const STATS_QUERY = `query Stats { stats { ${STATS_FIELDS} } }`;

export const STATS_SUBSCRIPTION = `subscription Stats($intervalMs: Int!) {
  stats(intervalMs: $intervalMs) { ${STATS_FIELDS} }
}`;

export const PLUGINS_QUERY = `query Plugins {
  plugins { name version kind state calls errors faults protocols { name flag transport ports } }
}`;

export const CHECK_FILTER_QUERY = `query CheckFilter($filter: String!) {
  checkFilter(filter: $filter) { ok error { message start end } }
}`;

export const VARIABLES_QUERY = `query Variables { variables { name type protocol doc } }`;

export const SERVICE_MAP_QUERY = `query ServiceMap($filter: String, $from: String, $to: String, $groupBy: GroupBy!) {
  serviceMap(filter: $filter, from: $from, to: $to, groupBy: $groupBy) {
    nodes { id label namespace }
    edges { source target protocol count errors ratePerSecond p50Us p95Us }
    scanned
  }
}`;
