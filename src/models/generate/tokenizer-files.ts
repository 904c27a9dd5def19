/**
 * The tokenizer files of a generated model, in the layout Transformers.js and
 * Hugging Face tokenizers read: tokenizer.json (a BERT WordPiece pipeline),
 * tokenizer_config.json, special_tokens_map.json and vocab.txt. Each piece
 * below is there because loading breaks without it (noted per field).
 */
import { SPECIAL_TOKENS, type Vocab } from './vocab.js';

export interface TokenizerFiles {
  'tokenizer.json': string;
  'tokenizer_config.json': string;
  'special_tokens_map.json': string;
  'vocab.txt': string;
}

function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

function addedTokens(vocab: Vocab): object[] {
  // Only the five real specials: [unusedN] stay ordinary vocab entries, as in BERT.
  const ids = Object.values(vocab.special).sort((a, b) => a - b);
  return ids.map((id) => ({
    id,
    content: vocab.tokens[id],
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
}

function tokenizerJson(vocab: Vocab): object {
  const { cls, sep } = SPECIAL_TOKENS;
  const vocabMap: Record<string, number> = {};
  vocab.tokens.forEach((t, id) => {
    vocabMap[t] = id;
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens(vocab),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: null,
      lowercase: true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    // Without the template, [CLS] and [SEP] are never added.
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: cls, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: sep, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: sep, type_id: 1 } },
      ],
      special_tokens: {
        [cls]: { id: cls, ids: [vocab.special.cls], tokens: [cls] },
        [sep]: { id: sep, ids: [vocab.special.sep], tokens: [sep] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: SPECIAL_TOKENS.unk,
      // Without the prefix, Transformers.js turns every subword into [UNK].
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab: vocabMap,
    },
  };
}

/** Builds the tokenizer files; `maxLength` becomes model_max_length. */
export function tokenizerFiles(vocab: Vocab, maxLength: number): TokenizerFiles {
  const { pad, unk, cls, sep, mask } = SPECIAL_TOKENS;
  const specialMap = {
    cls_token: cls,
    mask_token: mask,
    pad_token: pad,
    sep_token: sep,
    unk_token: unk,
  };
  return {
    'tokenizer.json': json(tokenizerJson(vocab)),
    'tokenizer_config.json': json({
      clean_up_tokenization_spaces: true,
      ...specialMap,
      do_basic_tokenize: true,
      do_lower_case: true,
      // Without it Transformers.js does not truncate, and texts longer than
      // the position table crash ONNX Runtime.
      model_max_length: maxLength,
      never_split: null,
      strip_accents: null,
      tokenize_chinese_chars: true,
      tokenizer_class: 'BertTokenizer',
    }),
    'special_tokens_map.json': json(specialMap),
    'vocab.txt': `${vocab.tokens.join('\n')}\n`,
  };
}
