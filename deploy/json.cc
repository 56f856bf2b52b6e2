#include "json.h"

#include <cstdlib>

namespace deploy {

const Value* Value::find(const std::string& key) const {
  if (type != Type::Object) return nullptr;
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->second;
}

namespace {

constexpr int kMaxDepth = 256;

class Parser {
 public:
  explicit Parser(const std::string& text) : s_(text) {}

  Value document() {
    Value v = value(0);
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the end");
    return v;
  }

 private:
  const std::string& s_;
  size_t pos_ = 0;

  [[noreturn]] void fail(const std::string& what) const {
    throw JsonError("invalid JSON at byte " + std::to_string(pos_) + ": " + what);
  }

  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }

  char peek() {
    skip_space();
    if (pos_ >= s_.size()) fail("unexpected end");
    return s_[pos_];
  }

  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++pos_;
  }

  void literal(const char* word) {
    for (const char* p = word; *p; ++p, ++pos_)
      if (pos_ >= s_.size() || s_[pos_] != *p) fail(std::string("expected ") + word);
  }

  Value value(int depth) {
    if (depth > kMaxDepth) fail("nested too deeply");
    Value v;
    switch (peek()) {
      case '{': object(&v, depth); break;
      case '[': array(&v, depth); break;
      case '"': v.type = Value::Type::String; v.string = string(); break;
      case 't': literal("true"); v.type = Value::Type::Bool; v.boolean = true; break;
      case 'f': literal("false"); v.type = Value::Type::Bool; break;
      case 'n': literal("null"); break;
      default: v.type = Value::Type::Number; v.number = number(); break;
    }
    return v;
  }

  void object(Value* v, int depth) {
    v->type = Value::Type::Object;
    expect('{');
    if (peek() == '}') { ++pos_; return; }
    for (;;) {
      if (peek() != '"') fail("expected a member name");
      std::string key = string();
      expect(':');
      v->object[key] = value(depth + 1);
      if (peek() == '}') { ++pos_; return; }
      expect(',');
    }
  }

  void array(Value* v, int depth) {
    v->type = Value::Type::Array;
    expect('[');
    if (peek() == ']') { ++pos_; return; }
    for (;;) {
      v->array.push_back(value(depth + 1));
      if (peek() == ']') { ++pos_; return; }
      expect(',');
    }
  }

  double number() {
    const char* begin = s_.c_str() + pos_;
    char* end = nullptr;
    if (*begin != '-' && (*begin < '0' || *begin > '9')) fail("unexpected character");
    double d = std::strtod(begin, &end);
    pos_ += static_cast<size_t>(end - begin);
    return d;
  }

  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("short \\u escape");
    unsigned code = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      code <<= 4;
      if (c >= '0' && c <= '9') code |= static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') code |= static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') code |= static_cast<unsigned>(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return code;
  }

  static void append_utf8(std::string* out, unsigned code) {
    if (code < 0x80) {
      out->push_back(static_cast<char>(code));
    } else if (code < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (code >> 6)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else if (code < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (code >> 12)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (code >> 18)));
      out->push_back(static_cast<char>(0x80 | ((code >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((code >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (code & 0x3F)));
    }
  }

  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') { out.push_back(c); continue; }
      if (pos_ >= s_.size()) fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': case '\\': case '/': out.push_back(e); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          unsigned code = hex4();
          if (code >= 0xD800 && code < 0xDC00 && pos_ + 6 <= s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u') {
            pos_ += 2;
            unsigned low = hex4();
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
          }
          append_utf8(&out, code);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
};

}  // namespace

Value parse_json(const std::string& text) { return Parser(text).document(); }

}  // namespace deploy
