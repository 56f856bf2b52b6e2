#include "pair_record.h"

#include <fcntl.h>
#ifndef BM_BUILTIN_SHA256
#include <openssl/evp.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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

#ifdef BM_BUILTIN_SHA256
// FIPS 180-4's SHA-256, for builds without OpenSSL (the aarch64 cross test, docs/runtime.md): one pass over
// the bytes, then the padding (0x80, zeros, the length in bits, big-endian) in one or two last blocks.
namespace {

void sha256_block(uint32_t h[8], const unsigned char* p) {
  static const uint32_t k[64] = {
      0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
      0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
      0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
      0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
      0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
      0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
      0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
      0xc67178f2};
  auto rotr = [](uint32_t x, int n) { return x >> n | x << (32 - n); };
  uint32_t w[64], v[8];
  for (int i = 0; i < 16; ++i) w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; ++i)
    w[i] = w[i - 16] + (rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ w[i - 15] >> 3) + w[i - 7] +
           (rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ w[i - 2] >> 10);
  for (int i = 0; i < 8; ++i) v[i] = h[i];
  for (int i = 0; i < 64; ++i) {
    const uint32_t t1 = v[7] + (rotr(v[4], 6) ^ rotr(v[4], 11) ^ rotr(v[4], 25)) + ((v[4] & v[5]) ^ (~v[4] & v[6])) + k[i] + w[i];
    const uint32_t t2 = (rotr(v[0], 2) ^ rotr(v[0], 13) ^ rotr(v[0], 22)) + ((v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]));
    for (int j = 7; j > 0; --j) v[j] = v[j - 1];
    v[4] += t1;
    v[0] = t1 + t2;
  }
  for (int i = 0; i < 8; ++i) h[i] += v[i];
}

}  // namespace
#endif

std::string sha256_hex(std::string_view bytes) {
  static const char hex[] = "0123456789abcdef";
  std::string text;
#ifdef BM_BUILTIN_SHA256
  uint32_t h[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t done = 0;
  for (; bytes.size() - done >= 64; done += 64) sha256_block(h, data + done);
  unsigned char last[128] = {};
  const size_t rest = bytes.size() - done, blocks = rest + 9 > 64 ? 2 : 1;
  std::memcpy(last, data + done, rest);
  last[rest] = 0x80;
  for (int i = 0; i < 8; ++i) last[blocks * 64 - 1 - i] = uint8_t(uint64_t(bytes.size()) * 8 >> (8 * i));
  for (size_t b = 0; b < blocks; ++b) sha256_block(h, last + 64 * b);
  for (uint32_t word : h)
    for (int shift = 28; shift >= 0; shift -= 4) text += hex[word >> shift & 15];
#else
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (!EVP_Digest(bytes.data(), bytes.size(), digest, &size, EVP_sha256(), nullptr))
    throw Error("OpenSSL's SHA-256 failed");
  for (unsigned int i = 0; i < size; ++i) text += {hex[digest[i] >> 4], hex[digest[i] & 15]};
#endif
  return text;
}

}  // namespace deploy
