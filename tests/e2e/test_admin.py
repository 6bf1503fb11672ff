import pytest
from playwright.sync_api import expect

from tests.conftest import ARTIFACTS
from tests.e2e.conftest import login
from tests.factories import CustomerFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_marketer_signs_in_and_sees_the_customer_list(page, live_server, marketer):
    # given two customers
    CustomerFactory(external_id="hh-1", name="Ada Lovelace")
    CustomerFactory(external_id="hh-2", name="Grace Hopper", marketing_consent=False)
    # when the marketer signs in (landing on the dashboard), goes to the admin and opens Customers
    login(page, live_server, "marketer")
    page.click("text=Admin")
    page.click("text=Customers")
    # then both are listed, searchable
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 2
    assert "Ada Lovelace" in page.inner_text("#result_list")
    page.fill("#searchbar", "Grace")
    page.press("#searchbar", "Enter")
    page.wait_for_selector("#result_list")
    assert page.locator("#result_list tbody tr").count() == 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "admin-customers.png"), full_page=True)


def test_a_marketer_cannot_change_customers(page, live_server, marketer):
    customer = CustomerFactory(name="Read Only")
    login(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/shop/customer/{customer.id}/change/")
    # a view-only page: no save button
    assert page.locator("input[name=_save]").count() == 0
    assert "Read Only" in page.content()


@pytest.mark.worker
def test_the_marketer_uploads_an_event_file_and_watches_it_import(
    page, live_server, marketer, celery_worker, settings, tmp_path
):
    # given a CSV with one good and one bad row
    settings.MEDIA_ROOT = celery_worker.media_root
    upload = tmp_path / "views.csv"
    upload.write_text("who,when,sku\nc1,2024-01-01T10:00:00Z,i1\nc2,not a date,i2\n")
    # when the marketer uploads it with the column mapping
    login(page, live_server, "marketer")
    page.goto(f"{live_server.url}/admin/shop/importrun/add/")
    page.set_input_files("#id_file", str(upload))
    page.select_option("#id_event_type", "view")
    page.fill("#id_column_customer", "who")
    page.fill("#id_column_occurred_at", "when")
    page.fill("#id_column_item", "sku")
    page.click("input[name=_save]")
    # then the list shows it queued, refreshes itself, and ends done with the counts
    row = page.locator("#result_list tbody tr").first
    expect(row).to_contain_text("Done", timeout=60000)
    # status, rows, stored, already there, rejected, and the report of the rejected row
    assert "views.csv\tDone\t2\t1\t0\t1\trejected rows (CSV)" in row.inner_text()
    with page.expect_download() as download:
        page.click("text=rejected rows (CSV)")
    report = download.value.path().read_text()
    assert report.splitlines() == ["line,column,value,reason", "3,when,not a date,unparseable date"]
    page.screenshot(path=str(ARTIFACTS / "admin-import-done.png"), full_page=True)


def test_the_api_docs_page_renders_without_internet(page, live_server, analyst):
    login(page, live_server, "analyst")
    page.goto(f"{live_server.url}/api/v1/docs/")
    expect(page.locator("text=/api/v1/events/").first).to_be_visible(timeout=15000)
    page.screenshot(path=str(ARTIFACTS / "api-docs.png"))
