// The C API of bm_runtime.h over runtime::Model: exceptions become status codes and a per-thread message.
#include <new>
#include <string>

#include "../../native/kernels/isa.h"
#include "bm_runtime.h"
#include "model.h"

struct bm_model {
  std::unique_ptr<binary_models::runtime::Model> model;
};

namespace {

thread_local std::string last_error;

template <typename F>
bm_status guarded(F&& body) {
  using namespace binary_models::runtime;
  try {
    last_error.clear();
    body();
    return BM_OK;
  } catch (const Unsupported& err) {
    last_error = err.what();
    return BM_ERROR_UNSUPPORTED;
  } catch (const BadArgument& err) {
    last_error = err.what();
    return BM_ERROR_ARGUMENT;
  } catch (const deploy::Error& err) {
    last_error = err.what();
    return BM_ERROR_MODEL;
  } catch (const std::bad_alloc&) {
    last_error = "out of memory";
    return BM_ERROR_MEMORY;
  } catch (const std::exception& err) {
    last_error = err.what();
    return BM_ERROR_INTERNAL;
  }
}

bm_status null_argument(const char* name) {
  last_error = std::string(name) + " is null";
  return BM_ERROR_ARGUMENT;
}

}  // namespace

extern "C" {

bm_status bm_model_load(const char* prefix, bm_model** model) {
  if (!prefix || !model) return null_argument(!prefix ? "prefix" : "model");
  *model = nullptr;
  return guarded([&] { *model = new bm_model{binary_models::runtime::Model::load(prefix)}; });
}

bm_status bm_model_load_memory(const char* symbol_json, size_t symbol_size, const void* params, size_t params_size,
                               bm_model** model) {
  if (!symbol_json || !params || !model) return null_argument(!model ? "model" : !params ? "params" : "symbol_json");
  *model = nullptr;
  return guarded([&] {
    *model = new bm_model{binary_models::runtime::Model::from_memory(
        std::string_view(symbol_json, symbol_size), std::string_view(static_cast<const char*>(params), params_size))};
  });
}

void bm_model_free(bm_model* model) { delete model; }

bm_status bm_model_set_threads(bm_model* model, int threads) {
  if (!model) return null_argument("model");
  return guarded([&] { model->model->set_threads(threads); });
}

bm_status bm_model_run(bm_model* model, const float* input, const int64_t shape[4]) {
  if (!model || !input || !shape) return null_argument(!model ? "model" : !input ? "input" : "shape");
  return guarded([&] { model->model->run(input, {shape[0], shape[1], shape[2], shape[3]}); });
}

int bm_model_num_outputs(const bm_model* model) { return model ? int(model->model->num_outputs()) : 0; }

bm_status bm_model_output(const bm_model* model, int index, const float** data, const int64_t** shape, int* ndim) {
  if (!model || !data || !shape || !ndim) return null_argument(!model ? "model" : "an output pointer");
  return guarded([&] {
    if (index < 0) throw binary_models::runtime::BadArgument("output index " + std::to_string(index));
    const binary_models::runtime::Value& value = model->model->output(size_t(index));
    *data = value.floats();
    *shape = value.shape.data();
    *ndim = int(value.shape.size());
  });
}

const char* bm_last_error(void) { return last_error.c_str(); }

const char* bm_isa(void) { return binary_models::isa_name(binary_models::active_isa()); }

}  // extern "C"
