/**
 * The stand-in OpenAI-compatible provider for tests. It lives in bench/ (so the
 * remote benchmark runs it from dist/); its header says what it does not cover.
 */
export * from '../../bench/stand-in-provider.js';
