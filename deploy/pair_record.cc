#include "pair_record.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <regex>
#include <set>

#include "error.h"
#include "io.h"

namespace deploy {

namespace {

bool plain_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find_first_of(std::string("/\0", 2)) == std::string::npos;
}

// binary_models.files.STAGING_NAME: the folder staging_folder() makes beside its target.
bool staging_folder_name(const std::string& name) {
  static const std::regex pattern(R"(\.packing-[a-z0-9_]{8}(\.[0-9]+)?)");
  return std::regex_match(name, pattern);
}

// A folder descriptor, closed when it goes.
class Folder {
 public:
  explicit Folder(int fd = -1) : fd_(fd) {}
  Folder(Folder&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  Folder(const Folder&) = delete;
  Folder& operator=(const Folder&) = delete;
  ~Folder() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Python's truth value of a JSON value (check_pair words a falsy record entry as "not listed").
bool truthy(const nlohmann::json& value) {
  if (value.is_null()) return false;
  if (value.is_boolean()) return value.get<bool>();
  if (value.is_number()) return value.get<double>() != 0;
  return !value.empty();  // string, array, object
}

struct Rename {
  int from_folder;  // a Folder's descriptor
  std::string from, to;
};

}  // namespace

PairRecord finish_commit(const std::string& path) {
  PairRecord record;
  record.path = path;
  if (!is_file(path)) return record;
  nlohmann::json content;
  try {
    content = parse_json(read_file(path, "pair record"));
  } catch (const Error&) {
    return record;  // not a record: binary_models ignores it too
  }
  const nlohmann::json empty = nlohmann::json::object();
  if (!content.is_object() || !content.contains("files") || !content["files"].is_object()) return record;
  const nlohmann::json& staged = content.contains("staged") ? content["staged"] : empty;
  if (!staged.is_object()) return record;
  record.found = true;
  record.files = content["files"];

  const size_t slash = path.rfind('/');
  const std::string folder_path = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  auto refuse = [&](const nlohmann::json& name) {
    return Error("pair record " + path + ": " + quoted(name) + " is not the name of a file in its folder");
  };
  // Every name is checked before the first rename: a record with one bad name moves nothing.
  Folder folder(open(folder_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::map<std::string, Folder> staging;  // staging folder name -> descriptor (-1: not there any more)
  std::vector<Rename> renames;
  for (const auto& [target, source_value] : staged.items()) {
    if (!plain_name(target)) throw refuse(target);
    if (!source_value.is_string()) throw refuse(source_value);
    const std::string& source = source_value.get_ref<const std::string&>();
    const size_t cut = source.find('/');
    if (cut == std::string::npos) {
      if (!plain_name(source)) throw refuse(source_value);
      renames.push_back({folder.fd(), source, target});
      continue;
    }
    const std::string sub = source.substr(0, cut), name = source.substr(cut + 1);
    if (!staging_folder_name(sub) || !plain_name(name)) throw refuse(source_value);
    if (!staging.count(sub)) {
      // O_NOFOLLOW: a link named like a staging folder could lead anywhere.
      int fd = folder.fd() < 0 ? -1 : openat(folder.fd(), sub.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno != ENOENT) throw refuse(source_value);
      staging.emplace(sub, Folder(fd));
    }
    renames.push_back({staging.at(sub).fd(), name, target});
  }
  for (const Rename& r : renames) {
    struct stat info;
    // Gone: finished already. Not allowed (a read-only folder): check_pair reports the mix.
    if (r.from_folder >= 0 && fstatat(r.from_folder, r.from.c_str(), &info, 0) == 0 && S_ISREG(info.st_mode))
      renameat(r.from_folder, r.from.c_str(), folder.fd(), r.to.c_str());
  }
  return record;
}

void check_pair(const PairRecord& record, const std::vector<std::pair<std::string, std::string_view>>& files,
                const std::string& what) {
  if (!record.found) return;
  for (const auto& [path, contents] : files) {
    const std::string name = path.substr(path.rfind('/') + 1);
    const auto recorded = record.files.find(name);
    const bool listed = recorded != record.files.end() && truthy(*recorded);
    if (listed && recorded->is_string() && recorded->get_ref<const std::string&>() == sha256_hex(contents)) continue;
    std::set<std::string> other_paths;
    for (const auto& other : files)
      if (other.first != path) other_paths.insert(other.first);
    std::string others;
    for (const std::string& other : other_paths) others += (others.empty() ? "" : " and ") + other;
    throw Error(what + ": " + path + " is not the file written together with " +
                (others.empty() ? "its partner" : others) + " (" +
                (listed ? "it changed since" : "it is not listed in") + " the pair record " + record.path + ")");
  }
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (!EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr))
    throw Error("OpenSSL's SHA-256 failed");
  static const char hex[] = "0123456789abcdef";
  std::string text;
  for (unsigned int i = 0; i < size; ++i) text += {hex[digest[i] >> 4], hex[digest[i] & 15]};
  return text;
}

}  // namespace deploy
