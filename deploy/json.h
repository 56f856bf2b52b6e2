// A small JSON reader: enough for MXNet's symbol files (the operators a model uses) and the package's run
// files (input size and preprocessing). Parses RFC 8259 JSON into a tree of Values; throws JsonError with
// the byte offset of the first problem.
#pragma once

#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace deploy {

class JsonError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Value {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Value> array;
  std::map<std::string, Value> object;

  bool is(Type t) const { return type == t; }
  // The member called key of an object, or nullptr (also when this is not an object).
  const Value* find(const std::string& key) const;
};

// Parses a whole document; trailing non-space characters are an error.
Value parse_json(const std::string& text);

}  // namespace deploy
