// Test helper of the cluster tier (slurm_test.cpp, pyxis_test.cpp): Slurm commands on the controller host of the
// cluster that tests/cluster/cluster.sh started (STATE/bin/in-ctl), and batch jobs waited on with deadlines.
#pragma once

#include <chrono>
#include <string>

#include "tests/support/process.h"

namespace rankserve::testing {

inline const std::string kBin = RANKSERVE_BIN;
inline const std::string kClientBin = RANKSERVE_CLIENT_BIN;
inline const std::string kState = RANKSERVE_CLUSTER_STATE;
inline const std::string kSource = RANKSERVE_SOURCE_DIR;
inline const std::string kInCtl = kState + "/bin/in-ctl";

std::string read_file(const std::string& path);

// Submits `sbatch --parsable -o STATE/jobs/%j.out ARGS` on the controller; returns the job id (the case stops when
// sbatch fails).
std::string sbatch(const std::string& args);

// STATE/jobs/<id>.out, the job's log.
std::string job_log(const std::string& id);

// Waits (deadline: `tries` x 200 ms) until job `id` has left the queue; false if it has not.
bool wait_until_left(const std::string& id, int tries);

// Submits a batch job and waits (deadline: 120 s) until it has left the queue, cancelling it then; returns its id.
std::string sbatch_and_wait(const std::string& args);

// `scancel FLAGS ID`, then waits (deadline: 120 s) until the job has left the queue; returns its log. The case stops
// (with the log) when the job is still there.
std::string cancel_and_wait(const std::string& id, const std::string& flags = "");

// Checks that job `id`, 2 tasks on 2 nodes where --gpus 2 wants 4, failed before starting anything: the log names the
// fix and the exit code is the topology category's (3). Returns the log.
std::string check_topology_failure(const std::string& id);

// The job's ExitCode as scontrol shows it ("3:0"), or "unknown:" and what scontrol said.
std::string job_exit_code(const std::string& id);

// The first word of `path` once job `id` has written one (a URL), polled until the deadline; cancels the job and stops
// the case with the job's log when none comes.
std::string wait_for_job_url(const std::string& id, const std::string& path, std::chrono::seconds deadline);

// `text` in single quotes for a shell command line.
std::string shell_quote(const std::string& text);

// The "> " prompts an interactive rankserve-client printed after its "type a prompt" greeting.
size_t num_prompts(const std::string& session_output);

// An interactive rankserve-client session through a real terminal (`script` gives `command`, an srun --pty, the
// terminal a user would have): `line` is typed at once, "exit" only once the answer is in and the prompt is back,
// then the input ends, as when a user types it and closes the terminal. Returns the exit code (-1 when the session
// did not end within 60 s of the answer; it is killed) and what the terminal showed, '\r' removed.
Result interactive_client(const std::string& command, const std::string& line);

}  // namespace rankserve::testing
