// The pair record PREFIX.pair.json that binary_models' replace_together writes when it replaces a packed
// model's two files as a unit: {"files": {name: SHA-256 hex}, "staged": {name: temporary}}. It is the
// commit point of the save; a reader finishes the renames of a save killed after it, then checks that the
// files are the ones written together. The same rules as binary_models' finish_commit and check_pair,
// with one more: the record names only files in its own folder. No MXNet here.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace deploy {

struct PairRecord {
  std::string path;
  bool found = false;    // false: no record, or a file that is no record (nothing to check, as in Python)
  nlohmann::json files;  // file name -> the SHA-256 it was written with
};

// Reads the record at path and renames each staged temporary that is still there onto its file. A target
// must be a plain file name in the record's folder; a temporary too, or a plain name inside a staging
// folder of save_packed (".packing-XXXXXXXX.PID/NAME", a real folder, not a link). Any other name: Error
// ("pair record P: NAME is not the name of a file in its folder"), before anything is moved. A rename the
// folder does not allow (read-only) is left to check_pair's error.
PairRecord finish_commit(const std::string& path);

// Throws Error with binary_models' wording unless each (path, contents) is the file recorded under its
// name ("WHAT: P is not the file written together with Q (it changed since the pair record R)").
void check_pair(const PairRecord& record, const std::vector<std::pair<std::string, std::string_view>>& files,
                const std::string& what);

// The SHA-256 of bytes as 64 lower-case hex digits (OpenSSL's libcrypto).
std::string sha256_hex(std::string_view bytes);

}  // namespace deploy
