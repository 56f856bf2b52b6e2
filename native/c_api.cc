// Plain C functions of the library, for ctypes (binary_models/native.py): which ISA the kernels run, which
// ones this machine supports, and switching between them (the tests compare every ISA in one process); and
// whether the kernels run a convolution's geometry (the converter decides with it, before any forward pass);
// and the OpenMP team size of the calling thread (the converter's copies run without a team of their own).
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/conv_shape.h"
#include "kernels/isa.h"

namespace {

// -1 for an unknown name, else 1 when this CPU and OS can run it, 0 when not.
int lookup(const char* name, binary_models::Isa* isa) {
  if (!name || !binary_models::isa_from_name(name, isa)) return -1;
  return binary_models::isa_supported(*isa) ? 1 : 0;
}

}  // namespace

extern "C" {

// The name of the ISA binary_conv2d runs ("scalar", "avx2", "avx512", "avx512-emulated").
const char* binary_models_isa() { return binary_models::isa_name(binary_models::active_isa()); }

// The best ISA this CPU and OS support.
const char* binary_models_best_isa() { return binary_models::isa_name(binary_models::best_isa()); }

// 1 when this CPU and OS support the ISA `name`, 0 when not, -1 for an unknown name.
int binary_models_isa_supported(const char* name) {
  binary_models::Isa isa;
  return lookup(name, &isa);
}

// Makes `name` ("auto": the best) the ISA binary_conv2d runs: 1 when done, 0 when this CPU or OS does not
// support it, -1 for an unknown name (nothing changes then).
int binary_models_set_isa(const char* name) {
  binary_models::Isa isa;
  const int found = lookup(name, &isa);
  return found == 1 && binary_models::set_active_isa(isa) ? 1 : found;
}

// "" when binary_conv2d runs a convolution of this geometry (any input size it fits), else the problem, as
// the operator would report it (ConvShape::check_geometry). The text lives until the thread's next call.
const char* binary_models_conv_problem(int in_channels, int out_channels, int kernel_h, int kernel_w, int stride_h,
                                       int stride_w, int pad_h, int pad_w, int dilate_h, int dilate_w, int groups) {
  static thread_local std::string problem;
  binary_models::ConvShape s;
  s.in_channels = in_channels;
  s.out_channels = out_channels;
  s.kernel_h = kernel_h;
  s.kernel_w = kernel_w;
  s.stride_h = stride_h;
  s.stride_w = stride_w;
  s.pad_h = pad_h;
  s.pad_w = pad_w;
  s.dilate_h = dilate_h;
  s.dilate_w = dilate_w;
  s.groups = groups;
  problem = s.check_geometry();
  return problem.c_str();
}

// Sets how many threads the calling thread's next OpenMP parallel regions use (omp_set_num_threads; 0 or less:
// no change) and returns the previous number; with 1, also ends the calling thread's idle team. Every thread
// that runs a region with more than one thread keeps a team of its own (MXNet's copies in the Python thread
// do: mx.nd.array of a batch, copy.deepcopy), and once libgomp manages more threads than there are CPUs it
// spins only briefly before sleeping at every barrier, in every team: the dense stages' convolutions then wait
// for wake-ups.
int binary_models_caller_threads(int threads) {
#ifdef _OPENMP
  const int previous = omp_get_max_threads();
  if (threads > 0) omp_set_num_threads(threads);
#if _OPENMP >= 201811
  if (threads == 1) omp_pause_resource_all(omp_pause_soft);  // frees this thread's team (libgomp); 0 when done
#endif
  return previous;
#else
  (void)threads;
  return 1;
#endif
}

}
