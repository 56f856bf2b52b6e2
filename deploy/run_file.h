// PREFIX-run.json, which `python -m binary_models.convert` writes beside a packed model: the input size,
// the preprocessing (binary_models.transforms.Preprocessing.as_dict()) and the class names. No MXNet here.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace deploy {

struct Preprocessing {
  int input_size = 224;
  double crop_ratio = 0.875;  // <= 0: no crop, the image is stretched to input_size x input_size
  bool grayscale = false;
  std::vector<double> mean = {0.485, 0.456, 0.406};  // ImageNet's (GluonCV's train_imagenet.py), RGB
  std::vector<double> std = {0.229, 0.224, 0.225};
};

struct ClassNames {
  std::vector<std::string> names;
  std::string source;  // for errors: "run file P: class_names" or "--labels file P"
};

struct RunSettings {
  Preprocessing preprocessing;
  std::optional<ClassNames> class_names;
};

// The settings of the run file at path over base (the members it lacks keep base's values). Throws Error
// ("run file P: ...") for a file that is not JSON or a member of the wrong kind.
RunSettings read_run_file(const std::string& path, RunSettings base);

// Throws Error unless names has one name per class ("... has 3 names, the model has 10 classes").
void check_class_names(const ClassNames& names, size_t classes);

}  // namespace deploy
