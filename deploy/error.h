// The one exception type of deploy/: a problem the program reports as one "error: ..." line (exit status 2).
#pragma once

#include <stdexcept>

namespace deploy {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace deploy
