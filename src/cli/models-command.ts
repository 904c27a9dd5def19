/**
 * `streambed models generate`: writes a BERT-architecture embedding model
 * with seeded random weights (src/models/generate) for tests, benchmarks
 * and demos that must run offline. Its vectors are not semantic.
 */
import { Command, InvalidArgumentError, Option } from 'commander';

import { generateModel, MODEL_PRESETS, type ModelPreset } from '../models/generate/index.js';

/** A commander parser accepting only plain non-negative integers ("1e3", "2.5", "-1" fail). */
function nonNegativeInteger(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new InvalidArgumentError('Expected a non-negative integer.');
  }
  return n;
}

interface GenerateFlags {
  preset: ModelPreset;
  seed: number;
  out: string;
  hidden?: number;
  layers?: number;
  json?: boolean;
}

export function modelsCommand(): Command {
  const models = new Command('models').description('Work with embedding models.');
  models
    .command('generate')
    .description(
      'Write a BERT-architecture model with seeded random weights in the Hugging Face layout ' +
        '(fp32 and int8 ONNX). Same options, same bytes. Its vectors are NOT semantic.',
    )
    .addOption(
      new Option(
        '--preset <preset>',
        'architecture: tiny (2 layers, 64 dims) or minilm (all-MiniLM-L6-v2 shape)',
      )
        .choices(MODEL_PRESETS)
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--seed <n>', 'PRNG seed').argParser(nonNegativeInteger).makeOptionMandatory(),
    )
    .requiredOption('--out <dir>', 'folder to write (created if missing, files overwritten)')
    .option(
      '--hidden <n>',
      'hidden size, a multiple of the attention heads (tiny: 4, minilm: 12)',
      nonNegativeInteger,
    )
    .option('--layers <n>', 'number of encoder layers', nonNegativeInteger)
    .option('--json', 'print {dir, dim, preset, seed} as JSON')
    .action(async (flags: GenerateFlags) => {
      const model = await generateModel({
        preset: flags.preset,
        seed: flags.seed,
        out: flags.out,
        hidden: flags.hidden,
        layers: flags.layers,
      });
      process.stdout.write(
        flags.json
          ? `${JSON.stringify(model)}\n`
          : `${model.dir}\ndim ${model.dim} (preset ${model.preset}, seed ${model.seed}; vectors are not semantic)\n`,
      );
    });
  return models;
}
