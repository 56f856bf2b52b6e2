// Whole-file reads and JSON documents, with errors that name the file. No MXNet here.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <string>

namespace deploy {

bool is_file(const std::string& path);

// The file's bytes; throws Error("<what> <path>: <reason>") when it cannot be read.
std::string read_file(const std::string& path, const std::string& what);

// The JSON document text (RFC 8259, by nlohmann/json); throws Error("invalid JSON: <reason>").
nlohmann::json parse_json(const std::string& text);

// A JSON value as the one-line text an error message quotes: strings and numbers as JSON writes them,
// an array or object by its type (never a whole tree).
std::string quoted(const nlohmann::json& value);

// Shortest decimal that reads back as the same double (what Python's str(float) writes; operators get
// their parameters as such text).
std::string decimal(double x);

}  // namespace deploy
