// Peer side of bench/asl: runs one definition in aws-local-stepfunctions, in memory.
//
// usage: node driver.mjs DEFINITION INPUT WARMUP_SECONDS ROUNDS ROUND_SECONDS
// Prints one JSON object: {transitions, output, rounds: [{executions, transitions, seconds}]}.
//
// Every execution drains its event log into an array, so the peer pays for its
// history as Dirigent does. A transition is one StateExited event (a state entered
// and left); Map iterations forward theirs to the root log, tagged with an index.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { StateMachine } from 'aws-local-stepfunctions';

const [definitionPath, inputPath, warmup, rounds, roundSeconds] = process.argv.slice(2);
const definition = JSON.parse(readFileSync(definitionPath, 'utf8'));
const input = JSON.parse(readFileSync(inputPath, 'utf8'));
// Validation happens once, here, outside the timed loop: the benchmark measures execution.
const stateMachine = new StateMachine(definition);

async function execute() {
  const execution = stateMachine.run(input);
  const history = [];
  for await (const event of execution.eventLogs) history.push(event);
  const output = await execution.result;
  let transitions = 0;
  for (const event of history) if (event.type === 'StateExited') transitions += 1;
  return { output, transitions };
}

async function round(seconds) {
  let executions = 0;
  let transitions = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    transitions += (await execute()).transitions;
    executions += 1;
    elapsed = (performance.now() - start) / 1000;
  } while (elapsed < seconds);
  return { executions, transitions, seconds: elapsed };
}

const first = await execute();
await round(Number(warmup));
const results = [];
for (let i = 0; i < Number(rounds); i += 1) results.push(await round(Number(roundSeconds)));
process.stdout.write(
  `${JSON.stringify({ transitions: first.transitions, output: first.output, rounds: results })}\n`,
);
