/**
 * Inputs sent as token ids, turned back into text. LangChain's
 * OpenAIEmbeddings, by default (`check_embedding_ctx_length`), tokenises each
 * text with tiktoken and sends the ids instead of the text; for a model name
 * tiktoken does not know (any fleet model) it uses `cl100k_base`, the
 * encoding of OpenAI's embedding models. Other OpenAI-compatible servers
 * refuse such requests or embed the ids as their own model's tokens (wrong
 * vectors), and their users must find `check_embedding_ctx_length=False`.
 * cl100k_base is lossless, so decoding gives back the exact text, which the
 * workers then tokenise with the model's own tokenizer.
 *
 * The encoding's tables take ~0.3 s and tens of MB to load: only on the
 * first request that needs them, never for text.
 */
import type { Tiktoken } from 'js-tiktoken/lite';

import { badRequest } from './openai-shapes.js';

let decoder: Promise<Tiktoken> | undefined;

function cl100k(): Promise<Tiktoken> {
  decoder ??= Promise.all([
    import('js-tiktoken/lite'),
    import('js-tiktoken/ranks/cl100k_base'),
  ]).then(([{ Tiktoken }, ranks]) => new Tiktoken(ranks.default));
  // A failed load is not kept: the next request tries again.
  decoder.catch(() => (decoder = undefined));
  return decoder;
}

/** Each list of cl100k_base ids as its text; an input that decodes to blank text is a 400. */
export async function textOfTokenIds(lists: readonly number[][]): Promise<string[]> {
  const enc = await cl100k();
  return lists.map((ids, i) => {
    const text = enc.decode(ids);
    if (text.trim().length === 0) throw badRequest(`input[${i}] decodes to empty text`, 'input');
    return text;
  });
}
