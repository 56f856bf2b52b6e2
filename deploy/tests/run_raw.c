/* run_raw: runs packed models on raw float32 tensors through the C API (bm_runtime.h) and writes their first
 * outputs as raw float32: no images, so it needs no libpng or libjpeg (the aarch64 cross test,
 * aarch64_check.py, runs it under qemu). Each line of LIST: PREFIX INPUT N C H W OUTPUT. */
#include <stdio.h>
#include <stdlib.h>

#include "../runtime/bm_runtime.h"

static int fail(const char* what, const char* name) {
  fprintf(stderr, "error: %s %s: %s\n", what, name, bm_last_error());
  return 2;
}

int main(int argc, char** argv) {
  if (argc != 2) { fprintf(stderr, "usage: run_raw LIST\n"); return 2; }
  FILE* list = fopen(argv[1], "r");
  if (!list) { fprintf(stderr, "error: cannot open %s\n", argv[1]); return 2; }
  char prefix[4096], input[4096], output[4096];
  long long n, c, h, w;
  while (fscanf(list, "%4095s %4095s %lld %lld %lld %lld %4095s", prefix, input, &n, &c, &h, &w, output) == 7) {
    const int64_t shape[4] = {n, c, h, w};
    const size_t count = (size_t)(n * c * h * w);
    float* x = malloc(count * sizeof(float));
    FILE* f = fopen(input, "rb");
    if (!x || !f || fread(x, sizeof(float), count, f) != count) { fprintf(stderr, "error: cannot read %s\n", input); return 2; }
    fclose(f);
    bm_model* model;
    const float* y;
    const int64_t* dims;
    int ndim;
    if (bm_model_load(prefix, &model) != BM_OK) return fail("loading", prefix);
    if (bm_model_run(model, x, shape) != BM_OK || bm_model_output(model, 0, &y, &dims, &ndim) != BM_OK)
      return fail("running", prefix);
    size_t size = 1;
    for (int i = 0; i < ndim; ++i) size *= (size_t)dims[i];
    f = fopen(output, "wb");
    if (!f || fwrite(y, sizeof(float), size, f) != size || fclose(f)) { fprintf(stderr, "error: cannot write %s\n", output); return 2; }
    bm_model_free(model);
    free(x);
  }
  fclose(list);
  printf("%s kernels\n", bm_isa());
  return 0;
}
