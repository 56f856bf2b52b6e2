// MXNet's parameter file (PREFIX-0000.params, what mx.nd.save writes): a list of named dense NDArrays.
// Read from memory with every length, count and dimension checked against the bytes that are there, so a
// truncated or hostile file is refused with one line, never read past its end.
//
// Layout (little-endian): uint64 0x112, uint64 0, uint64 count, count arrays, uint64 name count, names
// (uint64 length + bytes). An array: uint32 magic 0xF993FAC9 (V2) or 0xF993FACA (V3), int32 storage type
// (0: dense), int32 ndim, int64 dims[ndim], int32 device type, int32 device id, int32 dtype, the elements.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "tensor.h"

namespace binary_models::runtime {

struct Parameter {
  Shape shape;
  DType dtype = DType::kFloat32;
  Buffer data;
};

// Parameters by name, "arg:" / "aux:" removed. Throws deploy::Error naming the problem (a truncated file,
// an unsupported dtype or storage type, a repeated name, bytes after the last name).
std::map<std::string, Parameter> read_params(std::string_view bytes);

}  // namespace binary_models::runtime
