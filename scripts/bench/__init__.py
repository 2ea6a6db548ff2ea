"""`make bench`: how long a child waits for an answer, what the stack costs, the gateway's share.

Starts the real stack (trained model, every Rasa server of the embedded default; SQLite, or
PostgreSQL when DATABASE_URL is set, Rasa's lock store in Redis when REDIS_URL is set) on its own
ports with a fresh var dir under var/bench/ and the LINE stand-in of the tests, then measures in
one run (README "Benchmarks" explains how to read the result):

1. one conversation at a time, each turn sent through the gateway's web chat and, interleaved, the
   same turn straight to Rasa's REST channel (the p50 ratio is the gateway's overhead) and a turn
   of Rasa's own `rasa init` demo bot (stock.py: the project's p50 against Rasa's stock one);
2. 1, 10, 50 and 200 concurrent conversations (Thai and English, several turns each, a child's
   pause between turns), through the gateway (a fifth of them on LINE, whose webhook
   acknowledgements are timed) and then straight to Rasa: latency, turns/s, errors, fallbacks;
3. resident memory and CPU of each process at rest and under load, start-up time of each process,
   the model's training time, and `make eval`'s parse time per message (nlu_parse.py);
4. a profile of every process under load with py-spy (profiling.py: var/bench/profile.txt);
5. a burst: 200 conversations sending their first message in the same second (burst.py): holding
   lines, and whether the real answer followed.

Writes var/bench/report.json, var/bench/samples.json (every latency), var/bench/report.png and
the profile, and prints a summary with issue 16's targets. Runs with the gateway's Python.

Environment: BENCH_QUICK=1 (short phases, for development), BENCH_LEVELS ("1,10,50,200"),
BENCH_PHASE_S (seconds per load phase), BENCH_THINK_S ("3,12": a child's pause before each turn,
uniform in this range), BENCH_OVERHEAD_CONVERSATIONS, BENCH_PROFILE_CONVERSATIONS,
BENCH_PROFILE_S, BENCH_BURST (conversations), BENCH_BURST_S, BENCH_TRAIN (1: time a training even
if one was timed for these inputs; 0: never), BENCH_PARSE (0/1), BENCH_KEEP=1 (keep the var dir).
"""
