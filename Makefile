# Longer runs than CI's. The two commands that matter are in README.md.
.PHONY: soak fuzz

# Five minutes of concurrent sessions with a flapping exporter (CI runs 40 s).
soak:
	CCOTEL_SOAK_SECS=300 cargo test --release --test soak -- --nocapture

# Each fuzz target for ten minutes (CI runs each for a minute).
fuzz:
	bash fuzz/run.sh 600
