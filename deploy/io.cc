#include "io.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "mxnet_api.h"

namespace deploy {

bool is_file(const std::string& path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

std::string read_file(const std::string& path, const std::string& what) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) throw Error(what + " not found: " + path);
  if (!S_ISREG(info.st_mode)) throw Error(what + " is not a file: " + path);
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  if (in) bytes << in.rdbuf();
  if (!in || in.bad()) throw Error("cannot read " + what + " " + path + ": " + std::strerror(errno));
  return bytes.str();
}

}  // namespace deploy
