// Models from the Hugging Face hub, the network half: fetches the files a rank needs into the
// huggingface_hub cache (launcher/hub_cache.h) before loading. Called by commands/main.cpp.
#pragma once

#include <chrono>
#include <string>

#include "launcher/hub_cache.h"

namespace rankserve::launcher {

// The local model path for `id`: a .nemo file or a folder inside <cache>/models--ORG--NAME/snapshots/<commit>.
// Lists the revision with the hub's API ({endpoint}/api/models/{repo}/revision/{revision}?blobs=true),
// downloads what the cache lacks ({endpoint}/{repo}/resolve/{commit}/{file}, following redirects) into
// blobs/<etag>.incomplete, resuming with Range after a cut connection, checks each file against its
// etag (sha256 for LFS files, the git blob sha1 otherwise), then links snapshots/<commit>/<file> to its
// blob and writes refs/<revision>. Processes on one host take turns through a lock file
// (<cache>/.locks/models--ORG--NAME/rankserve.lock): the first downloads, the others then find the cache
// complete. A waiter gives up after `wait_timeout` without the download making progress.
// HubFiles::config fetches only the config (plan) and writes no ref: the snapshot is not a model yet.
// HF_HUB_OFFLINE (settings.offline): the cache only. When the hub cannot be reached, a complete cached
// snapshot is used with a warning. Logs progress (MB, GB/s). Throws Error(load) naming the repo or file,
// and, without a network, what to download and where to put it.
std::string fetch_hub_model(const HubId& id, const HubSettings& settings, std::chrono::milliseconds wait_timeout,
                            HubFiles which = HubFiles::model);

}  // namespace rankserve::launcher
