// Whole-file reads with errors that name the file.
#pragma once

#include <string>

namespace deploy {

bool is_file(const std::string& path);

// The file's bytes; throws Error("<what> <path>: <reason>") when it cannot be read.
std::string read_file(const std::string& path, const std::string& what);

}  // namespace deploy
