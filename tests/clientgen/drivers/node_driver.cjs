// One capture with a Node client library, logged the way applications log.
//
// Run by tests/clientgen/run.py with Node 20 (never by the test suite). Packages come from
// $CLIENTGEN_NODE_DIR/node_modules (openai, openai4 = openai@4, ai, @ai-sdk/openai,
// @langchain/openai, pino, undici, https-proxy-agent). The job comes as JSON in $CLIENTGEN_JOB;
// whatever the app and the library print goes to stdout/stderr (one file: the capture). The
// result (what happened, and the byte range of the error record in that file) goes to job.result.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const util = require('node:util');
const { createRequire } = require('node:module');

const JOB = JSON.parse(process.env.CLIENTGEN_JOB);
const lib = createRequire(path.join(process.env.CLIENTGEN_NODE_DIR, 'package.json'));

const STEPS = [0.004, 0.213, 0.051, 0.377, 0.019, 0.142, 0.008, 0.266];

class Clock {
  constructor(start) {
    this.t = start;
    this.i = 0;
  }
  now() {
    this.t += STEPS[this.i % STEPS.length];
    this.i += 1;
    return this.t;
  }
  iso() {
    return new Date(Math.round(this.now() * 1000)).toISOString();
  }
}

const clock = new Clock(JOB.clock || 0);
const size = () => fs.fstatSync(1).size;

// -- the app's logging --------------------------------------------------------------------------

function consoleApp(mode) {
  return {
    info(message) {
      console.log(`${clock.iso()} INFO  [worker] ${message}`);
    },
    error(err) {
      if (mode === 'message') console.error('chat failed:', err.message);
      else console.error(err);
    },
  };
}

function pinoApp() {
  const pino = lib('pino');
  const log = pino(
    {
      base: { service: 'support-bot' },
      timestamp: () => `,"time":"${clock.iso()}"`,
    },
    pino.destination({ dest: 1, sync: true }),
  );
  return {
    info(message) {
      log.info({ ticket: JOB.ticket }, message);
    },
    error(err) {
      log.error({ err, ticket: JOB.ticket }, 'model call failed');
    },
  };
}

const STYLES = {
  console_error: () => consoleApp('dump'),
  console_message: () => consoleApp('message'),
  pino: pinoApp,
};

// -- the calls ----------------------------------------------------------------------------------

const SYSTEM = 'You draft short, polite replies to customer support tickets.';
const PROMPT = 'Customer asks: where is the refund for order 4211?';
const TEXTS = ['refund policy for damaged items', 'shipping times to Canada'];

function userContent(params, style) {
  if (!params.image_url) return PROMPT;
  if (style === 'vercel') {
    return [
      { type: 'text', text: 'Read the total from this receipt.' },
      { type: 'image', image: new URL(params.image_url) },
    ];
  }
  return [
    { type: 'text', text: 'Read the total from this receipt.' },
    { type: 'image_url', image_url: { url: params.image_url } },
  ];
}

function chatParams(params) {
  const out = {};
  if (params.max_tokens !== undefined) out.max_tokens = params.max_tokens;
  if (params.temperature !== undefined) out.temperature = params.temperature;
  return out;
}

function undiciProxy() {
  const undici = lib('undici');
  const dispatcher = new undici.ProxyAgent(JOB.proxy);
  return { fetch: undici.fetch, dispatcher };
}

async function callOpenAI(pkg) {
  const mod = lib(pkg);
  const OpenAI = mod.OpenAI || mod.default || mod;
  const options = { apiKey: JOB.api_key, baseURL: JOB.base_url };
  if (JOB.max_retries !== null) options.maxRetries = JOB.max_retries;
  if (JOB.timeout) options.timeout = JOB.timeout * 1000;
  if (JOB.proxy) {
    if (pkg === 'openai4') {
      const { HttpsProxyAgent } = lib('https-proxy-agent');
      options.httpAgent = new HttpsProxyAgent(JOB.proxy);
    } else {
      const proxy = undiciProxy();
      options.fetch = proxy.fetch;
      options.fetchOptions = { dispatcher: proxy.dispatcher };
    }
  }
  const client = new OpenAI(options);
  const params = JOB.params;
  if (JOB.endpoint === 'embeddings') {
    const extra = params.dimensions ? { dimensions: params.dimensions } : {};
    await client.embeddings.create({ model: JOB.model, input: TEXTS, ...extra });
  } else if (JOB.endpoint === 'images') {
    await client.images.generate({ model: JOB.model, prompt: 'a receipt', size: '1024x1024' });
  } else if (JOB.endpoint === 'responses') {
    await client.responses.create({ model: JOB.model, instructions: SYSTEM, input: PROMPT });
  } else {
    await client.chat.completions.create({
      model: JOB.model,
      messages: [
        { role: 'system', content: SYSTEM },
        { role: 'user', content: userContent(params) },
      ],
      ...chatParams(params),
    });
  }
}

async function callVercel() {
  const ai = lib('ai');
  const { createOpenAI } = lib('@ai-sdk/openai');
  const settings = { apiKey: JOB.api_key, baseURL: JOB.base_url };
  if (JOB.proxy) {
    const proxy = undiciProxy();
    settings.fetch = (url, init) => proxy.fetch(url, { ...init, dispatcher: proxy.dispatcher });
  }
  const openai = createOpenAI(settings);
  const common = {};
  if (JOB.max_retries !== null) common.maxRetries = JOB.max_retries;
  if (JOB.timeout) common.abortSignal = AbortSignal.timeout(JOB.timeout * 1000);
  const params = JOB.params;
  if (JOB.endpoint === 'embeddings') {
    const providerOptions = params.dimensions ? { openai: { dimensions: params.dimensions } } : {};
    await ai.embedMany({
      model: openai.embedding(JOB.model),
      values: TEXTS,
      providerOptions,
      ...common,
    });
  } else if (JOB.endpoint === 'images') {
    await ai.generateImage({ model: openai.image(JOB.model), prompt: 'a receipt', ...common });
  } else {
    const model = JOB.endpoint === 'responses' ? openai.responses(JOB.model) : openai.chat(JOB.model);
    const extra = {};
    if (params.max_tokens !== undefined) extra.maxOutputTokens = params.max_tokens;
    if (params.temperature !== undefined) extra.temperature = params.temperature;
    await ai.generateText({
      model,
      system: SYSTEM,
      messages: [{ role: 'user', content: userContent(params, 'vercel') }],
      ...extra,
      ...common,
    });
  }
}

async function callLangChain() {
  const lc = lib('@langchain/openai');
  const configuration = { baseURL: JOB.base_url };
  if (JOB.proxy) {
    const proxy = undiciProxy();
    configuration.fetch = proxy.fetch;
    configuration.fetchOptions = { dispatcher: proxy.dispatcher };
  }
  const common = { apiKey: JOB.api_key, configuration };
  if (JOB.max_retries !== null) common.maxRetries = JOB.max_retries;
  if (JOB.timeout) common.timeout = JOB.timeout * 1000;
  if (JOB.debug) common.verbose = true;
  const params = JOB.params;
  if (JOB.endpoint === 'embeddings') {
    const extra = params.dimensions ? { dimensions: params.dimensions } : {};
    const embeddings = new lc.OpenAIEmbeddings({ model: JOB.model, ...common, ...extra });
    await embeddings.embedDocuments(TEXTS);
    return;
  }
  if (JOB.endpoint === 'images') {
    const dalle = new lc.DallEAPIWrapper({
      model: JOB.model,
      apiKey: JOB.api_key,
      baseUrl: JOB.base_url,
      maxRetries: common.maxRetries,
    });
    await dalle.invoke('a receipt');
    return;
  }
  const fields = { model: JOB.model, ...common };
  if (JOB.endpoint === 'responses') fields.useResponsesApi = true;
  if (params.max_tokens !== undefined) fields.maxTokens = params.max_tokens;
  if (params.temperature !== undefined) fields.temperature = params.temperature;
  const llm = new lc.ChatOpenAI(fields);
  await llm.invoke([
    ['system', SYSTEM],
    ['human', userContent(params)],
  ]);
}

const CALLS = {
  'openai-node': () => callOpenAI('openai'),
  'openai-node-4': () => callOpenAI('openai4'),
  vercel: callVercel,
  'langchain-js': callLangChain,
};

function versions(names) {
  const found = {};
  for (const name of names) {
    try {
      found[name] = lib(`${name}/package.json`).version;
    } catch (err) {
      const file = path.join(process.env.CLIENTGEN_NODE_DIR, 'node_modules', name, 'package.json');
      if (fs.existsSync(file)) found[name] = JSON.parse(fs.readFileSync(file, 'utf8')).version;
    }
  }
  return found;
}

async function main() {
  if (JOB.versions) {
    fs.writeFileSync(JOB.result, JSON.stringify(versions(JOB.versions)));
    return;
  }
  const app = STYLES[JOB.style]();
  const ticket = JOB.ticket;
  app.info(`worker started (queue=support-replies, concurrency=${JOB.workers})`);
  app.info(`ticket ${ticket}: drafting reply with ${JOB.model}`);
  let result = { outcome: 'ok' };
  try {
    await CALLS[JOB.lib]();
    app.info(`ticket ${ticket}: reply drafted, waiting for agent review`);
  } catch (err) {
    const start = size();
    app.error(err);
    const end = size();
    result = {
      outcome: 'error',
      exception: err && err.constructor ? err.constructor.name : typeof err,
      summary: util.inspect(err, { depth: 0 }).split('\n')[0],
      span: [start, end],
    };
    app.info(`ticket ${ticket}: requeued (attempt 1 of 3)`);
  }
  app.info(`ticket ${ticket + 1}: skipped (customer closed it)`);
  fs.writeFileSync(JOB.result, JSON.stringify(result));
}

// A library that loses a request's promise (it happens, rarely, to https-proxy-agent answering a
// failed CONNECT) would let Node exit with nothing written: fail loudly instead, run.py retries.
const watchdog = setTimeout(() => {
  console.error('clientgen driver: the call never settled');
  process.exit(4);
}, 30000);

main().then(
  () => process.exit(0),
  (err) => {
    console.error('clientgen driver failed:', err);
    process.exit(3);
  },
);
