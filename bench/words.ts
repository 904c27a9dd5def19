/**
 * English words for the benchmark corpora, most frequent first. Sampled with
 * a Zipf-like weight by corpus.ts; with the generated WordPiece vocabulary
 * this averages ~1.5 tokens per word, like English under a real BERT vocab.
 */
export const WORDS = (
  'the of and to in is was for on that with as by at it from he be this are or his an ' +
  'which not but they had have were has one their also first new her she its been more ' +
  'after two who all other when there time would can what some into only out about up ' +
  'we you so if no will do my your our them than then these may most over such ' +
  'years year made many where world any work used people well state city part between ' +
  'because while before through during each both under since three like make just ' +
  'data model text page user system file code test value list name type error result ' +
  'request stream worker queue redis vector search token good day night water ' +
  'house school music game book life home family company government number group ' +
  'university national american english history united found known called later ' +
  'quick brown jumps lazy river mountain village market garden window morning evening ' +
  'small large long short early late great little public private local general special ' +
  'service support report review program project process product problem question answer ' +
  'policy account address message content context network server client database cluster ' +
  'memory storage compute latency throughput request response session payment customer ' +
  'document section chapter article summary analysis research science medicine hospital ' +
  'teacher student library museum theatre festival season weather climate energy ' +
  'election minister parliament council committee agreement contract industry economy ' +
  'building bridge station airport harbour railway highway traffic vehicle engine ' +
  'language culture society community population century decade tradition religion ' +
  'president director manager engineer developer designer operator administrator ' +
  'software hardware platform interface protocol algorithm function variable parameter ' +
  'performance reliability availability scalability observability configuration ' +
  'deployment infrastructure orchestration authentication authorization encryption ' +
  'understanding development environment relationship organization international ' +
  'significantly approximately particularly respectively independently simultaneously ' +
  'notwithstanding nevertheless furthermore consequently accordingly ' +
  'walked talked looked asked wanted needed called seemed turned started ' +
  'running making taking coming going writing reading building sending receiving ' +
  'quickly slowly carefully easily clearly recently finally usually actually really ' +
  'happy simple strong important different possible available similar common certain ' +
  'north south east west river lake ocean forest desert island valley coast border ' +
  'january february march april june july august september october november december ' +
  'monday tuesday wednesday thursday friday saturday sunday today tomorrow yesterday'
).split(/\s+/);
