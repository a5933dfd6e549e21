//! What each end-to-end scenario makes Claude Code do: its prompts, how they
//! are given, its permissions, and the model's script.

use crate::fake_api::{text, thinking, tool, turn, Outcome, Script, ScriptedError, Turn, Usage};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// How the prompts reach Claude Code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// One `-p <prompt>` process.
    Single,
    /// One process, every prompt as a stream-json user message on stdin, the
    /// next one after the previous `result`.
    StreamJson,
    /// One `-p` process per prompt, the later ones with `--resume <session>`.
    Resume,
}

pub struct Scenario {
    pub name: &'static str,
    pub input: Input,
    /// `--dangerously-skip-permissions`.
    pub bypass: bool,
    /// The `permissions` block of settings.json.
    pub permissions: Option<Value>,
    pub script: Script,
}

impl Scenario {
    pub fn prompts(&self) -> &[String] {
        &self.script.prompts
    }
}

fn script(prompts: &[&str], queues: Vec<(&str, Vec<Turn>)>, routes: &[(&str, &str)]) -> Script {
    Script {
        model: None,
        routes: routes
            .iter()
            .map(|(m, q)| (m.to_string(), q.to_string()))
            .collect(),
        queues: queues
            .into_iter()
            .map(|(q, t)| (q.to_string(), t))
            .collect::<BTreeMap<_, _>>(),
        prompts: prompts.iter().map(|p| p.to_string()).collect(),
    }
}

fn path(work: &Path, file: &str) -> String {
    work.join(file).display().to_string()
}

fn bash(command: &str, outcome: Outcome) -> crate::fake_api::Block {
    tool(
        "Bash",
        json!({"command": command, "description": format!("Run {command}")}),
        outcome,
    )
}

/// Bash, Read, Write, Edit, then Bash and Read in parallel.
pub fn tools(work: &Path) -> Scenario {
    let main = vec![
        turn(
            vec![
                thinking("Start with the shell, then the files."),
                text("Running the command first."),
                bash("echo hello-e2e", Outcome::Ok),
            ],
            Usage::new(1210, 41, 0, 8800),
        ),
        turn(
            vec![tool(
                "Read",
                json!({"file_path": path(work, "notes.txt")}),
                Outcome::Ok,
            )],
            Usage::new(61, 29, 8800, 130),
        ),
        turn(
            vec![tool(
                "Write",
                json!({"file_path": path(work, "summary.txt"),
                       "content": "The notes list apples and bananas.\n"}),
                Outcome::Ok,
            )],
            Usage::new(83, 62, 8930, 210),
        ),
        turn(
            vec![tool(
                "Edit",
                json!({"file_path": path(work, "notes.txt"),
                       "old_string": "bananas", "new_string": "cherries"}),
                Outcome::Ok,
            )],
            Usage::new(92, 57, 9140, 160),
        ),
        turn(
            vec![
                text("Checking status and the summary at once."),
                bash("git status --short", Outcome::Ok),
                tool(
                    "Read",
                    json!({"file_path": path(work, "summary.txt")}),
                    Outcome::Ok,
                ),
            ],
            Usage::new(104, 73, 9300, 310),
        ),
        turn(
            vec![text(
                "Done: echoed, read, wrote summary.txt and edited notes.txt.",
            )],
            Usage::new(118, 33, 9610, 0),
        ),
    ];
    Scenario {
        name: "tools",
        input: Input::Single,
        bypass: true,
        permissions: None,
        script: script(
            &["E2E tools: run echo, read notes.txt, write a summary and edit the notes."],
            vec![("main", main)],
            &[],
        ),
    }
}

/// A Bash command that exits 2, one that prints and exits 3, a Read of a
/// missing file.
pub fn failure(work: &Path) -> Scenario {
    let main = vec![
        turn(
            vec![bash("ls /nonexistent-ccotel-e2e-dir", Outcome::Failed)],
            Usage::new(1105, 38, 0, 8900),
        ),
        turn(
            vec![bash("echo partial-output; exit 3", Outcome::Failed)],
            Usage::new(72, 36, 8900, 101),
        ),
        turn(
            vec![tool(
                "Read",
                json!({"file_path": path(work, "missing-e2e.txt")}),
                Outcome::Failed,
            )],
            Usage::new(81, 31, 9001, 99),
        ),
        turn(
            vec![text(
                "The directory and the file do not exist; exit 3 was expected.",
            )],
            Usage::new(93, 24, 9100, 0),
        ),
    ];
    Scenario {
        name: "failure",
        input: Input::Single,
        bypass: true,
        permissions: None,
        script: script(
            &["E2E failure: list a missing directory and read a missing file."],
            vec![("main", main)],
            &[],
        ),
    }
}

fn agent_call(description: &str, prompt: &str) -> crate::fake_api::Block {
    tool(
        "Agent",
        json!({"description": description, "prompt": prompt,
               "subagent_type": "general-purpose", "run_in_background": false}),
        Outcome::Ok,
    )
}

/// One subagent (Agent tool, foreground) that runs Bash.
pub fn subagent(_work: &Path) -> Scenario {
    let main = vec![
        turn(
            vec![
                text("Delegating to a subagent."),
                agent_call(
                    "List repository files",
                    "SUBAGENT-TASK-A: list the files in the working directory with ls.",
                ),
            ],
            Usage::new(1302, 78, 0, 9010),
        ),
        turn(
            vec![text("The subagent found README.md and notes.txt.")],
            Usage::new(204, 31, 9010, 252),
        ),
    ];
    let sub = vec![
        turn(vec![bash("ls", Outcome::Ok)], Usage::new(702, 26, 0, 5020)),
        turn(
            vec![text("Files: README.md, notes.txt.")],
            Usage::new(63, 19, 5020, 81),
        ),
    ];
    Scenario {
        name: "subagent",
        input: Input::Single,
        bypass: true,
        permissions: None,
        script: script(
            &["E2E subagent: use a subagent to look at the files here."],
            vec![("main", main), ("sub-a", sub)],
            &[("SUBAGENT-TASK-A", "sub-a")],
        ),
    }
}

/// Two Agent calls in one assistant message, both in the foreground.
pub fn parallel_subagents(work: &Path) -> Scenario {
    let main = vec![
        turn(
            vec![
                text("Two subagents, in parallel."),
                agent_call(
                    "List files",
                    "SUBAGENT-TASK-A: list the files in the working directory with ls.",
                ),
                agent_call(
                    "Read the notes",
                    "SUBAGENT-TASK-B: read notes.txt and say what it lists.",
                ),
            ],
            Usage::new(1333, 121, 0, 9100),
        ),
        turn(
            vec![text("Both subagents reported back.")],
            Usage::new(240, 27, 9100, 300),
        ),
    ];
    let sub_a = vec![
        turn(vec![bash("ls", Outcome::Ok)], Usage::new(701, 22, 0, 5001)),
        turn(
            vec![text("README.md and notes.txt.")],
            Usage::new(55, 14, 5001, 70),
        ),
    ];
    let sub_b = vec![
        turn(
            vec![tool(
                "Read",
                json!({"file_path": path(work, "notes.txt")}),
                Outcome::Ok,
            )],
            Usage::new(733, 28, 0, 5102),
        ),
        turn(
            vec![text("The notes list apples and bananas.")],
            Usage::new(66, 17, 5102, 90),
        ),
    ];
    Scenario {
        name: "parallel-subagents",
        input: Input::Single,
        bypass: true,
        permissions: None,
        script: script(
            &["E2E parallel: run two subagents at once."],
            vec![("main", main), ("sub-a", sub_a), ("sub-b", sub_b)],
            &[("SUBAGENT-TASK-A", "sub-a"), ("SUBAGENT-TASK-B", "sub-b")],
        ),
    }
}

fn three_prompt_turns(work: &Path) -> Vec<Turn> {
    vec![
        // prompt 1
        turn(
            vec![bash("echo one", Outcome::Ok)],
            Usage::new(1111, 30, 0, 9002),
        ),
        turn(vec![text("Printed one.")], Usage::new(51, 11, 9002, 61)),
        // prompt 2
        turn(
            vec![text("Something for the second prompt.")],
            Usage::new(42, 13, 9063, 41),
        ),
        // prompt 3
        turn(
            vec![tool(
                "Read",
                json!({"file_path": path(work, "notes.txt")}),
                Outcome::Ok,
            )],
            Usage::new(47, 29, 9104, 52),
        ),
        turn(
            vec![text("notes.txt lists apples and bananas.")],
            Usage::new(71, 16, 9156, 0),
        ),
    ]
}

/// Three prompts in one process over `--input-format stream-json`.
pub fn multi_turn(work: &Path) -> Scenario {
    Scenario {
        name: "multi-turn",
        input: Input::StreamJson,
        bypass: true,
        permissions: None,
        script: script(
            &[
                "E2E first: run echo one.",
                "E2E second: just say something.",
                "E2E third: read notes.txt.",
            ],
            vec![("main", three_prompt_turns(work))],
            &[],
        ),
    }
}

/// The same three prompts, one process each, continued with `--resume`.
pub fn resume(work: &Path) -> Scenario {
    Scenario {
        name: "resume",
        input: Input::Resume,
        bypass: true,
        permissions: None,
        script: script(
            &[
                "E2E resume first: run echo one.",
                "E2E resume second: just say something.",
                "E2E resume third: read notes.txt.",
            ],
            vec![("main", three_prompt_turns(work))],
            &[],
        ),
    }
}

/// No bypass: a deny rule stops `echo`, an allow rule lets `ls` run, Write
/// needs a permission nobody can give in `-p` mode, Read needs none.
pub fn denied(work: &Path) -> Scenario {
    let main = vec![
        turn(
            vec![bash("echo denied-e2e", Outcome::Denied)],
            Usage::new(1103, 32, 0, 9003),
        ),
        turn(vec![bash("ls", Outcome::Ok)], Usage::new(66, 24, 9003, 71)),
        turn(
            vec![tool(
                "Write",
                json!({"file_path": path(work, "out.txt"), "content": "needs permission\n"}),
                Outcome::Denied,
            )],
            Usage::new(62, 41, 9074, 82),
        ),
        turn(
            vec![tool(
                "Read",
                json!({"file_path": path(work, "notes.txt")}),
                Outcome::Ok,
            )],
            Usage::new(73, 31, 9156, 91),
        ),
        turn(
            vec![text(
                "echo was denied, ls ran, the write was refused, the notes were read.",
            )],
            Usage::new(84, 22, 9247, 0),
        ),
    ];
    Scenario {
        name: "denied",
        input: Input::Single,
        bypass: false,
        permissions: Some(json!({"deny": ["Bash(echo:*)"], "allow": ["Bash(ls:*)"]})),
        script: script(
            &["E2E denied: echo something, list files, write out.txt, read notes.txt."],
            vec![("main", main)],
            &[],
        ),
    }
}

/// No fixture shows this: the API is overloaded (529, `x-should-retry:
/// true`) for the first attempt of the first call and of the subagent's
/// first call; Claude Code retries and succeeds. Each model call must appear
/// once, as the attempt that succeeded.
pub fn api_retry(_work: &Path) -> Scenario {
    let overloaded = || ScriptedError {
        status: 529,
        kind: "overloaded_error".into(),
        message: "Overloaded".into(),
        times: 1,
    };
    let mut first = turn(
        vec![
            text("Delegating after a hiccup."),
            agent_call(
                "List files",
                "SUBAGENT-TASK-A: list the files in the working directory with ls.",
            ),
        ],
        Usage::new(1290, 64, 0, 9050),
    );
    first.error = Some(overloaded());
    let mut sub_first = turn(vec![bash("ls", Outcome::Ok)], Usage::new(705, 23, 0, 5005));
    sub_first.error = Some(overloaded());
    let main = vec![
        first,
        turn(
            vec![text("The subagent listed the files.")],
            Usage::new(211, 18, 9050, 240),
        ),
    ];
    let sub = vec![
        sub_first,
        turn(
            vec![text("README.md and notes.txt.")],
            Usage::new(57, 15, 5005, 66),
        ),
    ];
    Scenario {
        name: "api-retry",
        input: Input::Single,
        bypass: true,
        permissions: None,
        script: script(
            &["E2E retry: use a subagent to list the files."],
            vec![("main", main), ("sub-a", sub)],
            &[("SUBAGENT-TASK-A", "sub-a")],
        ),
    }
}
