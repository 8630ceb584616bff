#include "scheduling/admission.h"

#include <algorithm>

namespace ferry {

Micros ExpectedWait(const WaitEstimateInput& in) {
  if (in.service.count() <= 0 || in.instances == 0) return Micros(0);
  if (in.tasks_ahead == 0 && in.busy_instances < in.instances) return Micros(0);
  const size_t per_batch = std::max<size_t>(1, in.tasks_per_batch);
  const double batches_ahead = static_cast<double>((in.tasks_ahead + per_batch - 1) / per_batch);
  // The work in front, in executions, shared by the instances.
  const double executions = (batches_ahead + 0.5 * static_cast<double>(in.busy_instances)) /
                            static_cast<double>(in.instances);
  return Micros(static_cast<int64_t>(executions * static_cast<double>(in.service.count())));
}

void ServiceTime::Add(Micros sample) {
  const double us = static_cast<double>(std::max<int64_t>(0, sample.count()));
  ewma_us_ = ewma_us_ == 0 ? us : ewma_us_ + (us - ewma_us_) / 8;
}

}  // namespace ferry
