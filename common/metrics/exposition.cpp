#include "common/metrics/exposition.hpp"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <iterator>
#include <mutex>
#include <utility>

namespace jetstream::metrics {
namespace {

struct Attachment {
  const prometheus::Registry* registry;
  std::shared_ptr<prometheus::Collectable> collectable;
};

struct Table {
  std::mutex mutex;
  std::vector<Attachment> attachments;
};

Table& table() {
  // Never destroyed: a metrics server thread may still scrape while static destructors run.
  static Table* const instance = new Table;
  return *instance;
}

}  // namespace

void attach_collectable(const prometheus::Registry& registry,
                        std::shared_ptr<prometheus::Collectable> collectable) {
  if (!collectable) return;
  Table& t = table();
  const std::lock_guard lock(t.mutex);
  t.attachments.push_back({&registry, std::move(collectable)});
}

void detach_collectables(const prometheus::Registry& registry) {
  Table& t = table();
  const std::lock_guard lock(t.mutex);
  std::erase_if(t.attachments, [&](const Attachment& a) { return a.registry == &registry; });
}

std::vector<std::shared_ptr<prometheus::Collectable>> attached_collectables(
    const prometheus::Registry& registry) {
  std::vector<std::shared_ptr<prometheus::Collectable>> out;
  Table& t = table();
  const std::lock_guard lock(t.mutex);
  for (const Attachment& a : t.attachments) {
    if (a.registry == &registry) out.push_back(a.collectable);
  }
  return out;
}

std::vector<prometheus::MetricFamily> collect(const prometheus::Registry& registry) {
  std::vector<prometheus::MetricFamily> families = registry.Collect();
  // Collect outside the table lock: a collectable may be slow (it reads /proc).
  for (const auto& collectable : attached_collectables(registry)) {
    auto more = collectable->Collect();
    families.insert(families.end(), std::make_move_iterator(more.begin()),
                    std::make_move_iterator(more.end()));
  }
  return families;
}

std::string serialize(const prometheus::Registry& registry) {
  return prometheus::TextSerializer().Serialize(collect(registry));
}

}  // namespace jetstream::metrics
